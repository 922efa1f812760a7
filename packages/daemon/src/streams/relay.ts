import { STREAM_WINDOW } from "@sbx/protocol";

/** One side of a relayed stream: how to send frames toward it. */
export interface Endpoint {
  /**
   * `framed`, when given, is the same payload preceded by five scratch bytes the endpoint may
   * overwrite with its own frame header and send as is, saving a copy on the hot path.
   */
  data(chunk: Uint8Array, framed?: Buffer): void;
  end(): void;
  credit(bytes: number): void;
  abort(reason: string): void;
  /**
   * Null while this side takes bytes as fast as they come; otherwise a promise that resolves
   * once it has caught up, until when whoever feeds it data should stop reading its source.
   */
  congestion(): Promise<void> | null;
}

/**
 * Moves one byte stream from `src` to `dst` inside the daemon. The daemon never buffers
 * more than one window: it forwards DATA only while the sender stays within the credit
 * the final receiver granted, and passes CREDIT back as the receiver grants it. A sender
 * that overruns its window is a protocol violation reported to `onViolation`.
 */
export class Relay {
  private outstanding = 0;
  private closed = false;

  constructor(
    readonly src: Endpoint,
    readonly dst: Endpoint,
    private readonly onViolation: (reason: string) => void,
    private readonly onClose: () => void,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  data(chunk: Uint8Array, framed?: Buffer): void {
    if (this.closed) return;
    this.outstanding += chunk.byteLength;
    if (this.outstanding > STREAM_WINDOW) {
      this.abort(`flow control violated: ${this.outstanding} bytes in flight exceed the window of ${STREAM_WINDOW}`);
      this.onViolation("flow control violated");
      return;
    }
    this.dst.data(chunk, framed);
  }

  credit(bytes: number): void {
    if (this.closed) return;
    const n = Math.min(bytes, this.outstanding);
    this.outstanding -= n;
    if (n > 0) this.src.credit(n);
  }

  end(): void {
    if (this.closed) return;
    this.dst.end();
    this.close();
  }

  /** The sender gave up: tell the receiver. */
  abortFromSrc(reason: string): void {
    if (this.closed) return;
    this.dst.abort(reason);
    this.close();
  }

  /** The receiver stopped reading: tell the sender. */
  abortFromDst(reason: string): void {
    if (this.closed) return;
    this.src.abort(reason);
    this.close();
  }

  /** Tells both sides (used when either one goes away). */
  abort(reason: string): void {
    if (this.closed) return;
    this.src.abort(reason);
    this.dst.abort(reason);
    this.close();
  }

  private close(): void {
    this.closed = true;
    this.onClose();
  }
}
