import type { Readable, Writable } from "node:stream";
import { CREDIT_BATCH, MAX_CHUNK, STREAM_WINDOW } from "@sbx/protocol/frames";
import { ChannelOp, channelHeader, encodeChannelFrame, encodeCreditFrame, encodeMessage } from "../channel/framing.js";

/** The supervisor's end of the channel: writes frames to the daemon. */
export class Link {
  constructor(private readonly out: Writable) {}

  message(msg: unknown): void {
    this.out.write(encodeMessage(msg));
  }
  /** Header and payload in one writev, without copying the payload. */
  data(id: number, chunk: Uint8Array): void {
    this.out.cork();
    this.out.write(channelHeader(ChannelOp.Data, id, chunk.byteLength));
    this.out.write(chunk);
    process.nextTick(() => this.out.uncork());
  }
  end(id: number): void {
    this.out.write(encodeChannelFrame(ChannelOp.End, id));
  }
  credit(id: number, bytes: number): void {
    this.out.write(encodeCreditFrame(id, bytes));
  }
  abort(id: number, reason: string): void {
    this.out.write(encodeChannelFrame(ChannelOp.Abort, id, Buffer.from(reason.slice(0, 1024))));
  }
}

/** Bytes from a local source to the daemon, never more than the credit the daemon granted. */
export class OutStream {
  private credit = STREAM_WINDOW;
  private queue: Buffer[] = [];
  private ended = false;
  private done = false;
  private source: Readable | null = null;

  constructor(private readonly link: Link, readonly id: number, private readonly onDone: () => void) {}

  attach(source: Readable): void {
    this.source = source;
    source.on("data", (chunk: Buffer) => {
      this.queue.push(chunk);
      this.flush();
    });
    source.on("end", () => {
      this.ended = true;
      this.flush();
    });
    source.on("error", (err) => this.fail(err.message));
  }

  onCredit(bytes: number): void {
    this.credit += bytes;
    this.flush();
  }

  /** The daemon (or the client behind it) stopped reading. */
  onAbort(): void {
    this.finish();
    this.source?.destroy();
  }

  fail(reason: string): void {
    if (this.done) return;
    this.link.abort(this.id, reason);
    this.finish();
    this.source?.destroy();
  }

  private flush(): void {
    if (this.done) return;
    while (this.queue.length > 0 && this.credit > 0) {
      const chunk = this.queue[0]!;
      const n = Math.min(chunk.length, this.credit, MAX_CHUNK);
      this.link.data(this.id, chunk.subarray(0, n));
      this.credit -= n;
      if (n === chunk.length) this.queue.shift();
      else this.queue[0] = chunk.subarray(n);
    }
    if (this.queue.length > 0) this.source?.pause();
    else if (this.ended) {
      this.link.end(this.id);
      this.finish();
    } else this.source?.resume();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.queue = [];
    this.onDone();
  }
}

/** Bytes from the daemon into a local sink; credit goes back as the sink takes them. */
export class InStream {
  private pending: Buffer[] = [];
  private ended = false;
  private sink: Writable | null = null;
  private aborted: string | null = null;
  private endWaiters: Array<(err: Error | null) => void> = [];
  private uncredited = 0;

  constructor(private readonly link: Link, readonly id: number) {}

  attach(sink: Writable): void {
    this.sink = sink;
    sink.on("error", (err) => this.fail(err.message));
    for (const chunk of this.pending) this.write(chunk);
    this.pending = [];
    if (this.aborted) sink.destroy(new Error(this.aborted));
    else if (this.ended) sink.end();
  }

  onData(chunk: Buffer): void {
    if (this.aborted) return;
    if (this.sink) this.write(chunk);
    else this.pending.push(chunk);
  }

  onEnd(): void {
    this.ended = true;
    this.sink?.end();
    this.settle(null);
  }

  onAbort(reason: string): void {
    this.aborted = reason || "aborted by the client";
    this.sink?.destroy(new Error(this.aborted));
    this.settle(new Error(this.aborted));
  }

  /** Resolves once the daemon has sent END, rejects if it aborted the stream. */
  whenEnded(): Promise<void> {
    if (this.ended) return Promise.resolve();
    if (this.aborted) return Promise.reject(new Error(this.aborted));
    return new Promise((resolve, reject) => this.endWaiters.push((err) => (err ? reject(err) : resolve())));
  }

  fail(reason: string): void {
    if (this.aborted) return;
    this.aborted = reason;
    this.link.abort(this.id, reason);
    this.settle(new Error(reason));
  }

  private write(chunk: Buffer): void {
    this.sink!.write(chunk, (err) => {
      if (err) return;
      this.uncredited += chunk.length;
      if (this.uncredited >= CREDIT_BATCH) {
        this.link.credit(this.id, this.uncredited);
        this.uncredited = 0;
      }
    });
  }

  private settle(err: Error | null): void {
    const waiters = this.endWaiters;
    this.endWaiters = [];
    for (const w of waiters) w(err);
  }
}
