import { STREAM_WINDOW } from "@sbx/protocol";
import type { StreamGrant } from "./budget.js";

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
  /** Bytes this side received and still holds, not passed on (see StreamGrant.close). */
  held?(): number;
}

/**
 * Moves one byte stream from `src` to `dst` inside the daemon. The daemon never buffers
 * more than one window: it forwards DATA only while the sender stays within the credit
 * the final receiver granted, and passes CREDIT back as the receiver grants it. A sender
 * that overruns its window is a protocol violation reported to `onViolation`.
 *
 * The window is STREAM_WINDOW (what a client may send), or for a stream from a sandbox its
 * `grant`: it starts small and widens as the receiver credits, out of the sandbox's budget.
 */
/** The most credit a sandbox stream waits to gather before it is sent to the supervisor. */
const SANDBOX_CREDIT_BATCH = 1 << 20;

export class Relay {
  private outstanding = 0;
  /**
   * A sandbox stream's credit not yet sent (bytes passed on, and the widening they earned): each
   * credit frame is a write the supervisor wakes up for, so it goes in batches (see credit()).
   */
  private pendingCredit = 0;
  private closed = false;

  constructor(
    readonly src: Endpoint,
    readonly dst: Endpoint,
    private readonly onViolation: (reason: string) => void,
    private readonly onClose: () => void,
    private readonly grant?: StreamGrant,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** Whether the window is a sandbox stream's grant (streams/budget.ts). */
  get granted(): boolean {
    return this.grant !== undefined;
  }

  /** Bytes the sender may have in flight now. */
  get window(): number {
    return this.grant?.size ?? STREAM_WINDOW;
  }

  data(chunk: Uint8Array, framed?: Buffer): void {
    if (this.closed) return;
    this.outstanding += chunk.byteLength;
    // Credit held back is window the sender has not been given yet: it counts as in flight.
    if (this.outstanding + this.pendingCredit > this.window) {
      this.abort(`flow control violated: ${this.outstanding + this.pendingCredit} bytes in flight exceed the window of ${this.window}`);
      this.onViolation("flow control violated");
      return;
    }
    this.dst.data(chunk, framed);
  }

  credit(bytes: number): void {
    if (this.closed) return;
    const n = Math.min(bytes, this.outstanding);
    this.outstanding -= n;
    if (n <= 0) return;
    if (!this.grant) return this.src.credit(n);
    // A stream being read may send more at once: its window grows by what was read, budget allowing.
    this.pendingCredit += n + this.grant.widen(n);
    // Never a deadlock: while the sender waits on its window, all it sent is outstanding or
    // pending here, so once the receiver has taken all of it the pending credit is the whole
    // window, past the threshold.
    if (this.pendingCredit >= Math.min(SANDBOX_CREDIT_BATCH, this.window / 4)) {
      const credit = this.pendingCredit;
      this.pendingCredit = 0;
      this.src.credit(credit);
    }
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
    this.grant?.close(this.dst.held?.() ?? 0);
    this.onClose();
  }
}
