import { CREDIT_BATCH, FrameOp, MAX_CHUNK, STREAM_WINDOW, creditOf, encodeAbort, encodeCredit, encodeFrame, type Frame } from "@sbx/protocol";
import { SandboxError } from "./errors.js";

/**
 * Sends a stream frame. With `payload`, `frame` is a DATA frame's header and the two go as the two
 * fragments of one message, so the payload is never copied to join them (the daemon reads them
 * apart too); `written` is called once the payload has gone to the socket, until when it may still
 * be the caller's buffer.
 */
type Send = (frame: Uint8Array, payload?: Uint8Array, written?: () => void) => void;

/** Chunks up to this size are written as one frame, copied; bigger ones as two fragments, not copied. */
const COPY_BELOW = 16 * 1024;

/** Bytes the daemon sends us, exposed as a Web ReadableStream that grants credit as it is read. */
export class IncomingStream {
  readonly readable: ReadableStream<Uint8Array>;
  private queue: Uint8Array[] = [];
  private ended = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private uncredited = 0;

  constructor(readonly id: number, private readonly send: Send, private readonly onDone: () => void) {
    this.readable = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          while (this.queue.length === 0 && !this.ended && !this.error) await new Promise<void>((r) => (this.wake = r));
          const chunk = this.queue.shift();
          if (chunk) {
            controller.enqueue(chunk);
            this.uncredited += chunk.byteLength;
            if (this.uncredited >= CREDIT_BATCH) {
              this.send(encodeCredit(this.id, this.uncredited));
              this.uncredited = 0;
            }
          } else if (this.error) controller.error(this.error);
          else controller.close();
        },
        cancel: (reason) => {
          this.send(encodeAbort(this.id, String(reason ?? "cancelled by the reader")));
          this.finish();
        },
      },
      { highWaterMark: 0 },
    );
  }

  onFrame(frame: Frame): void {
    // Each WebSocket message arrives in a buffer of its own: the payload can be kept without a copy.
    if (frame.op === FrameOp.Data) this.queue.push(frame.payload);
    else if (frame.op === FrameOp.End) this.finish();
    else if (frame.op === FrameOp.Abort) this.fail(new SandboxError(`stream aborted: ${new TextDecoder().decode(frame.payload)}`));
    this.wake?.();
  }

  fail(err: Error): void {
    this.error ??= err;
    this.finish();
    this.wake?.();
  }

  /** Stops the stream from this side (the daemon stops sending); the reader gets `reason`. */
  abort(reason: unknown): void {
    if (!this.ended) this.send(encodeAbort(this.id, "aborted by the client"));
    this.fail(reason as Error);
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.onDone();
  }
}

/** Bytes we send to the daemon, as a Web WritableStream that waits for credit. */
export class OutgoingStream {
  readonly writable: WritableStream<Uint8Array>;
  private outstanding = 0;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private done = false;

  constructor(readonly id: number, private readonly send: Send, private readonly onDone: () => void) {
    this.writable = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        if (!(chunk instanceof Uint8Array)) throw new TypeError("write a Uint8Array");
        if (chunk.byteLength === 0) return;
        // A small chunk is copied behind its header (cheaper than a second fragment, and the
        // caller's buffer is free at once); a big one goes as the header's fragment and its own.
        if (chunk.byteLength <= COPY_BELOW && this.outstanding + chunk.byteLength <= STREAM_WINDOW) {
          if (this.error) throw this.error;
          this.send(encodeFrame(FrameOp.Data, this.id, chunk));
          this.outstanding += chunk.byteLength;
          return;
        }
        let written = false;
        const onWritten = () => {
          written = true;
          this.wake?.();
        };
        for (let off = 0; off < chunk.byteLength; ) {
          while (this.outstanding >= STREAM_WINDOW && !this.error) await new Promise<void>((r) => (this.wake = r));
          if (this.error) throw this.error;
          const n = Math.min(chunk.byteLength - off, MAX_CHUNK, STREAM_WINDOW - this.outstanding);
          this.send(encodeFrame(FrameOp.Data, this.id), chunk.subarray(off, off + n), off + n === chunk.byteLength ? onWritten : undefined);
          this.outstanding += n;
          off += n;
        }
        // The chunk is the caller's again once write() resolves: not before the socket has it.
        while (!written && !this.error) await new Promise<void>((r) => (this.wake = r));
        if (!written) throw this.error;
      },
      close: () => {
        if (this.error) throw this.error;
        this.send(encodeFrame(FrameOp.End, this.id));
        this.finish();
      },
      abort: (reason) => {
        if (!this.error) this.send(encodeAbort(this.id, String(reason ?? "aborted by the writer")));
        this.finish();
      },
    });
  }

  onFrame(frame: Frame): void {
    if (frame.op === FrameOp.Credit) this.outstanding = Math.max(0, this.outstanding - creditOf(frame));
    else if (frame.op === FrameOp.Abort) this.fail(new SandboxError(`stream closed by the sandbox: ${new TextDecoder().decode(frame.payload)}`));
    this.wake?.();
  }

  fail(err: Error): void {
    this.error ??= err;
    this.finish();
    this.wake?.();
  }

  /** Stops the stream from this side (the receiver drops what it got); writes fail with `reason`. */
  abort(reason: unknown): void {
    if (!this.done) this.send(encodeAbort(this.id, "aborted by the client"));
    this.fail(reason as Error);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
  }
}

/** The streams of one connection, keyed by the ids this client chose. */
export class StreamTable {
  private next = 1;
  private readonly streams = new Map<number, IncomingStream | OutgoingStream>();

  constructor(private readonly send: Send) {}

  incoming(): IncomingStream {
    const s = new IncomingStream(this.next++, this.send, () => this.streams.delete(s.id));
    this.streams.set(s.id, s);
    return s;
  }

  outgoing(): OutgoingStream {
    const s = new OutgoingStream(this.next++, this.send, () => this.streams.delete(s.id));
    this.streams.set(s.id, s);
    return s;
  }

  onFrame(frame: Frame): void {
    this.streams.get(frame.stream)?.onFrame(frame);
  }

  failAll(error: () => Error): void {
    for (const s of [...this.streams.values()]) s.fail(error());
  }

  /** Ends every stream as an ABORT frame from the other side with `reason` would. */
  abortAll(reason: string): void {
    const payload = new TextEncoder().encode(reason);
    for (const s of [...this.streams.values()]) s.onFrame({ op: FrameOp.Abort, stream: s.id, payload });
  }
}
