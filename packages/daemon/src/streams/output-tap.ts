/**
 * A process's stdout or stderr as the daemon keeps it, so that a client that lost its connection
 * can attach again (process.attach) and read on from a byte offset. The daemon holds the last
 * KEPT bytes of each stream. While a client is attached, the process goes at that client's pace
 * (credit flows back to the supervisor only as the client grants it, as with a plain relay).
 * While none is, the process runs on until it has written one window (1 MiB) nobody read, then
 * waits for a reader: the daemon keeps those bytes and grants no more, so a vanished client costs
 * neither memory nor CPU (an endless writer cannot make the daemon drain it forever), and nothing
 * written is lost before someone attaches again.
 */
import { MAX_CHUNK, STREAM_WINDOW } from "@sbx/protocol";
import { Relay, type Endpoint } from "./relay.js";
import type { SupervisorLink } from "../sandbox/supervisor-link.js";

/** Bytes of each stream kept for a client that attaches later. */
export const KEPT = 1 << 20;
/** Bytes kept across all the streams of one sandbox: many writers share it, so the daemon's memory stays bounded per sandbox. */
export const KEPT_PER_SANDBOX = 8 << 20;

/**
 * What one sandbox's taps may keep together. Over it, ended processes' tails go first (oldest
 * first), then the writing stream's own oldest bytes.
 */
export class KeptBudget {
  used = 0;
  private readonly taps = new Set<OutputTap>();

  constructor(readonly limit = KEPT_PER_SANDBOX) {}

  add(tap: OutputTap): void {
    this.taps.add(tap);
  }

  forget(tap: OutputTap): void {
    if (this.taps.delete(tap)) tap.trim(tap.keptLength);
  }

  /** Makes room after `writer` grew. */
  reclaim(writer: OutputTap): void {
    for (const tap of this.taps) {
      if (this.used <= this.limit) return;
      if (tap.done && tap !== writer) tap.trim(Math.min(tap.keptLength, this.used - this.limit));
    }
    if (this.used > this.limit) writer.trim(Math.min(writer.keptLength, this.used - this.limit));
  }
}

interface Queued {
  data: Buffer;
  /** `data` preceded by five scratch bytes (see Endpoint.data), for a chunk sent once. */
  framed?: Buffer;
  replayed: boolean;
}

/**
 * The chunk as the tap may keep it (for up to KEPT bytes) without pinning much more memory than
 * it holds: a view that fills (nearly) all of its buffer, like a large frame the channel reader
 * assembled, is kept as it is; a small piece of a larger read is copied, with room for a header.
 */
function keepable(chunk: Uint8Array, framed: Buffer | undefined): [Buffer, Buffer | undefined] {
  const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (framed && chunk.byteLength * 8 >= chunk.buffer.byteLength * 7) return [view, framed];
  const copy = Buffer.allocUnsafe(5 + chunk.byteLength);
  view.copy(copy, 5);
  return [copy.subarray(5), copy];
}

export class OutputTap {
  /** What the supervisor sends, into this tap. */
  private readonly fromSandbox: Relay;
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  /** Bytes the stream has carried in all (the offset of its next byte). */
  total = 0;
  /** Received from the supervisor, not yet credited back to it. */
  private uncredited = 0;
  /** Chunks waiting for the attached client's window: the replayed tail, then live ones (with their frame's scratch header, when they have one). */
  private queue: Queued[] = [];
  private toClient: Relay | null = null;
  /** Bytes sent to the attached client it has not granted credit for. */
  private inFlight = 0;
  private ended: string | null = null;
  private failed = false;

  constructor(
    link: SupervisorLink,
    sid: number,
    onViolation: (reason: string) => void,
    private readonly budget: KeptBudget = new KeptBudget(),
  ) {
    budget.add(this);
    const sink: Endpoint = {
      data: (chunk, framed) => this.onData(...keepable(chunk, framed)),
      end: () => this.finish("end"),
      credit: () => {},
      abort: () => ((this.failed = true), this.finish("aborted")),
      // A client that is not keeping up makes the supervisor link stop reading, as with a plain relay.
      congestion: () => this.toClient?.dst.congestion() ?? null,
    };
    this.fromSandbox = new Relay(link.endpoint(sid), sink, onViolation, () => link.removeRelay(sid));
    link.addRelay(sid, this.fromSandbox, true);
  }

  get keptLength(): number {
    return this.keptBytes;
  }

  /** Drops the oldest `n` kept bytes. */
  trim(n: number): void {
    let left = n;
    while (left > 0 && this.kept.length) {
      const head = this.kept[0]!;
      if (head.length <= left) {
        this.kept.shift();
        left -= head.length;
      } else {
        this.kept[0] = head.subarray(left);
        left = 0;
      }
    }
    const dropped = n - left;
    this.keptBytes -= dropped;
    this.budget.used -= dropped;
  }

  /** The first offset still kept. */
  get start(): number {
    return this.total - this.keptBytes;
  }

  get done(): boolean {
    return this.ended !== null;
  }

  /**
   * Sends `client` the kept bytes from `from` on, then the live ones; returns the relay the
   * connection routes the client's CREDIT and ABORT to. A client attached before is let go.
   */
  attach(client: Endpoint, from: number, onClose: () => void): Relay {
    this.toClient?.abort("another client attached to this process's output");
    const source: Endpoint = {
      data: () => {},
      end: () => {},
      credit: (n) => {
        this.inFlight -= n;
        this.flush();
      },
      abort: () => this.detach(relay),
      congestion: () => null,
    };
    const relay = new Relay(source, client, () => {}, onClose);
    this.toClient = relay;
    this.inFlight = 0;
    // The replay: the kept tail from `from`, in chunks; what arrives meanwhile queues behind it.
    let skip = from - this.start;
    const replay: Buffer[] = [];
    for (const b of this.kept) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      const part = skip > 0 ? b.subarray(skip) : b;
      skip = 0;
      for (let off = 0; off < part.length; off += MAX_CHUNK) replay.push(part.subarray(off, off + MAX_CHUNK));
    }
    this.queue = [...replay.map((data) => ({ data, replayed: true })), ...this.queue];
    // What arrived while nobody read is in the replay: the supervisor may go on.
    if (this.uncredited > 0) {
      this.fromSandbox.credit(this.uncredited);
      this.uncredited = 0;
    }
    this.flush();
    return relay;
  }

  private onData(chunk: Buffer, framed: Buffer | undefined): void {
    this.total += chunk.length;
    this.kept.push(chunk);
    this.keptBytes += chunk.length;
    this.budget.used += chunk.length;
    if (this.keptBytes > KEPT) this.trim(this.keptBytes - KEPT);
    if (this.budget.used > this.budget.limit) this.budget.reclaim(this);
    this.uncredited += chunk.length;
    // Nobody reads: kept (the window bounds it), credited when a reader attaches.
    if (!this.toClient) return;
    this.queue.push({ data: chunk, framed, replayed: false });
    this.flush();
  }

  /** Moves queued chunks to the client within its window; live ones are credited to the supervisor as they go. */
  private flush(): void {
    const relay = this.toClient;
    if (!relay) return;
    while (this.queue.length && this.inFlight + this.queue[0]!.data.length <= STREAM_WINDOW) {
      const { data, framed, replayed } = this.queue.shift()!;
      this.inFlight += data.length;
      // A live chunk goes out once, so its frame's scratch header may be rewritten; a replayed one is framed afresh.
      relay.data(data, framed);
      if (!replayed) {
        this.uncredited -= data.length;
        this.fromSandbox.credit(data.length);
      }
      if (this.toClient !== relay) return;
    }
    if (this.queue.length === 0 && this.ended !== null && !this.failed) relay.end();
    else if (this.queue.length === 0 && this.failed) relay.abort("the process's output stream failed");
  }

  /** The attached client went away: what it had not been sent stays kept (and uncredited) for the next reader. */
  private detach(relay: Relay): void {
    if (this.toClient !== relay) return;
    this.toClient = null;
    this.queue = [];
  }

  private finish(how: string): void {
    if (this.ended) return;
    this.ended = how;
    this.flush();
  }
}
