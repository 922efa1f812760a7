import { ByteBudget, MARKS } from "./budget.js";

/** What a Link drives: a ClientSocket or a DaemonSocket (each batches its writes per tick). */
export interface Channel {
  /** Sends one message (text as a text message); `written` runs once the socket has written it. */
  send(data: string | Uint8Array, written: () => void): void;
  /** Sends whole frames' bytes as they are, valid for this socket's peer; `written` as for send. */
  sendFrame(parts: readonly Buffer[], written: () => void): void;
  pause(): void;
  resume(): void;
}

/**
 * One connection with its bytes counted (see ByteBudget) and its reading paused while anything
 * holds it: a session holds its client while an upstream it feeds is congested, and holds its
 * upstreams while the client is. Its owner calls `release()` once the connection is closed.
 */
export class Link {
  readonly budget: ByteBudget;
  private unsent = 0;
  private closed = false;
  private holds = 0;
  private reading = true;
  /** Runs whenever the last unsent byte has been written while nothing holds the connection. */
  onIdle: (() => void) | null = null;

  constructor(
    private readonly channel: Channel,
    gateway: ByteBudget,
  ) {
    this.budget = new ByteBudget(MARKS.socket.high, MARKS.socket.low, gateway);
  }

  /** Sends (text as a text message, bytes as a binary one), counting the bytes until the socket has written them. */
  send(data: string | Uint8Array): void {
    if (this.closed) return;
    const n = typeof data === "string" ? data.length : data.byteLength;
    this.count(n);
    this.channel.send(data, () => this.written(n));
  }

  /**
   * Writes whole frames' bytes as they are (a daemon's frames to its client, a client's re-masked
   * ones to a daemon), counted like `send`.
   */
  sendFrame(parts: readonly Buffer[]): void {
    if (this.closed) return;
    let n = 0;
    for (const p of parts) n += p.length;
    this.count(n);
    this.channel.sendFrame(parts, () => this.written(n));
  }

  private count(n: number): void {
    this.unsent += n;
    this.budget.add(n);
  }

  private written(n: number): void {
    if (this.closed) return;
    this.unsent -= n;
    this.budget.sub(n);
    if (this.unsent === 0 && this.holds === 0) this.onIdle?.();
  }

  /** Everything sent has been written and nothing holds the connection. */
  get idle(): boolean {
    return !this.closed && this.unsent === 0 && this.holds === 0;
  }

  /** Null while the peer keeps up; else resolves once it has caught up. */
  congestion(): Promise<void> | null {
    return this.budget.congested() ? this.budget.drained() : null;
  }

  /** Stops reading this socket until `until` settles. */
  hold(until: Promise<unknown>): void {
    this.holds++;
    this.update();
    void until.finally(() => {
      this.holds--;
      this.update();
    });
  }

  private update(): void {
    if (this.closed) return;
    const read = this.holds === 0;
    if (read === this.reading) return;
    this.reading = read;
    if (read) this.channel.resume();
    else this.channel.pause();
  }

  /** The connection is gone: what it never wrote no longer counts. */
  release(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.sub(this.unsent);
    this.unsent = 0;
  }
}

