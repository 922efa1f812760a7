/**
 * A process's stdout or stderr as the daemon keeps it, so that a client that lost its connection
 * can attach again (process.attach) and read on from a byte offset. The daemon holds the last
 * KEPT bytes of each stream. While a client is attached, the process goes at that client's pace
 * (credit flows back to the supervisor only as the client grants it, as with a plain relay).
 * While none is, the process runs on until it has written one window nobody read, then waits
 * for a reader: the daemon keeps those bytes and grants no more, so a vanished client costs
 * neither memory nor CPU (an endless writer cannot make the daemon drain it forever), and nothing
 * written is lost before someone attaches again. The window is the stream's grant from the
 * sandbox's StreamBudget (streams/budget.ts): bytes not yet sent to a client are never trimmed,
 * and they stay counted in that budget until they are sent (or the process is forgotten), so
 * all of a sandbox's unread output together stays within it.
 */
import { MAX_CHUNK, STREAM_WINDOW } from "@sbx/protocol";
import { Relay, type Endpoint } from "./relay.js";
import type { StreamBudget } from "./budget.js";
import type { SupervisorLink } from "../sandbox/supervisor-link.js";

/** Bytes of each stream kept for a client that attaches later, beyond those not yet sent (which are always kept). */
export const KEPT = 1 << 20;
/** Bytes already sent kept across all the streams of one sandbox: many writers share it, so the daemon's memory stays bounded per sandbox. */
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

  /**
   * The process is forgotten: what its tap holds goes, unless a client still reads it (then only
   * what that client was sent). `failed`: its spawn failed, nothing will ever come.
   */
  forget(tap: OutputTap, failed = false): void {
    if (this.taps.delete(tap)) tap.discard(failed);
  }

  /**
   * Lets go of the unread output of ended processes no client is attached to, oldest first,
   * until `bytes` of the stream budget are free (see StreamBudget.reclaim).
   */
  reclaimUnread(bytes: number): void {
    let left = bytes;
    for (const tap of this.taps) {
      if (left <= 0) return;
      if (tap.done && !tap.attached) left -= tap.dropUnread();
    }
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
  /** How many of its bytes no client was sent before (the last ones): sending them credits the supervisor. */
  unread: number;
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
  /** Received from the supervisor and not yet sent to any client (the last bytes of `kept`): never trimmed, counted in the stream budget. */
  private uncredited = 0;
  private readonly streams: StreamBudget;
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
    this.streams = link.streams;
    const grant = link.streams.open();
    budget.add(this);
    const sink: Endpoint = {
      data: (chunk, framed) => this.onData(...keepable(chunk, framed)),
      end: () => this.finish("end"),
      credit: () => {},
      abort: () => ((this.failed = true), this.finish("aborted")),
      // A client that is not keeping up makes the supervisor link stop reading, as with a plain relay.
      congestion: () => this.toClient?.dst.congestion() ?? null,
      // Once the stream is over, what nobody was sent yet stays in the sandbox's budget until it is.
      held: () => this.uncredited,
    };
    this.fromSandbox = new Relay(link.endpoint(sid), sink, onViolation, () => link.removeRelay(sid), grant);
    link.addRelay(sid, this.fromSandbox, true);
  }

  get keptLength(): number {
    return this.keptBytes;
  }

  /** Drops the oldest `n` kept bytes, but never one no client was sent yet. */
  trim(n: number): void {
    this.drop(Math.min(n, this.keptBytes - this.uncredited));
  }

  /** Drops what is kept and, unless a client still reads (and `always` is false), ends the stream and returns its unsent bytes to the budget. */
  discard(always: boolean): void {
    if (this.toClient && !always) return this.trim(this.keptBytes);
    this.toClient?.abort("the process's output is no longer kept");
    this.fromSandbox.abort("the process's output is no longer kept");
    this.dropUnread();
  }

  private drop(n: number): void {
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

  get attached(): boolean {
    return this.toClient !== null;
  }

  /** Drops what is kept, unsent bytes too (the stream is over and nobody reads); returns how many unsent bytes went back to the budget. */
  dropUnread(): number {
    const n = this.uncredited;
    this.drop(this.keptBytes);
    this.uncredited = 0;
    this.delivered(n);
    return n;
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
    // The replay: the kept tail from `from`, in chunks (the queue of a client before is in it).
    // Its last `uncredited` bytes no client was sent: they are credited to the supervisor as they
    // go, those the client chose to skip at once.
    const unreadFrom = this.total - this.uncredited;
    const skipped = Math.max(0, Math.min(from, this.total) - unreadFrom);
    if (skipped > 0) {
      this.uncredited -= skipped;
      this.delivered(skipped);
    }
    let at = this.start;
    const replay: Queued[] = [];
    for (const b of this.kept) {
      const end = at + b.length;
      if (end > from) {
        const part = at < from ? b.subarray(from - at) : b;
        const partAt = end - part.length;
        for (let off = 0; off < part.length; off += MAX_CHUNK) {
          const data = part.subarray(off, off + MAX_CHUNK);
          const first = partAt + off;
          replay.push({ data, unread: Math.max(0, first + data.length - Math.max(first, unreadFrom)) });
        }
      }
      at = end;
    }
    this.queue = replay;
    this.flush();
    return relay;
  }

  /** `n` bytes the supervisor sent left the daemon (or were let go): it may send as many more, or, the stream over, the budget has them back. */
  private delivered(n: number): void {
    if (n <= 0) return;
    if (!this.fromSandbox.isClosed) this.fromSandbox.credit(n);
    else this.streams.release(n);
  }

  private onData(chunk: Buffer, framed: Buffer | undefined): void {
    this.total += chunk.length;
    this.kept.push(chunk);
    this.keptBytes += chunk.length;
    this.budget.used += chunk.length;
    if (this.keptBytes > KEPT) this.trim(this.keptBytes - KEPT);
    if (this.budget.used > this.budget.limit) this.budget.reclaim(this);
    this.uncredited += chunk.length;
    // Nobody reads: kept (the window bounds it), credited when a reader is sent it.
    if (!this.toClient) return;
    this.queue.push({ data: chunk, framed, unread: chunk.length });
    this.flush();
  }

  /** Moves queued chunks to the client within its window; live ones are credited to the supervisor as they go. */
  private flush(): void {
    const relay = this.toClient;
    if (!relay) return;
    while (this.queue.length && this.inFlight + this.queue[0]!.data.length <= STREAM_WINDOW) {
      const { data, framed, unread } = this.queue.shift()!;
      this.inFlight += data.length;
      // A live chunk goes out once, so its frame's scratch header may be rewritten; a replayed one is framed afresh.
      relay.data(data, framed);
      this.uncredited -= unread;
      this.delivered(unread);
      if (this.toClient !== relay) return;
    }
    if (this.queue.length === 0 && this.ended !== null && !this.failed) relay.end();
    else if (this.queue.length === 0 && this.failed) relay.abort("the process's output stream failed");
  }

  /** The attached client went away: what it had not been sent stays kept (and counted in the budget) for the next reader. */
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
