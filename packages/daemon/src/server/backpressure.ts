/**
 * Bytes the daemon has handed to a client's WebSocket that the client has not taken yet,
 * counted per connection, per token and daemon-wide. Above a level's high mark the daemon
 * stops reading from that client (no new calls, credits or data) and from the sandboxes
 * writing to it, until the level is back under its low mark: a client that stops reading
 * costs the daemon a bounded amount, and its neighbours nothing.
 */
export class SendQueue {
  private bytes = 0;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly high: number,
    readonly low: number,
    private readonly parent: SendQueue | null = null,
  ) {}

  get queued(): number {
    return this.bytes;
  }

  add(n: number): void {
    this.bytes += n;
    this.parent?.add(n);
  }

  sub(n: number): void {
    this.bytes -= n;
    this.parent?.sub(n);
    if (this.bytes <= this.low && this.waiters.size > 0) {
      const waiters = [...this.waiters];
      this.waiters.clear();
      for (const w of waiters) w();
    }
  }

  /** The first level (this or an ancestor) over its high mark, or null. */
  congested(): SendQueue | null {
    if (this.bytes > this.high) return this;
    return this.parent?.congested() ?? null;
  }

  /** Resolves once every level is at or under its low mark again. */
  async drained(): Promise<void> {
    for (let level = this.overLow(); level; level = this.overLow()) {
      await new Promise<void>((resolve) => level.waiters.add(resolve));
    }
  }

  private overLow(): SendQueue | null {
    if (this.bytes > this.low) return this;
    return this.parent?.overLow() ?? null;
  }
}

/** The marks, per level: a connection's own, its token's (all its connections), and the daemon's. */
export const SEND_MARKS = {
  connection: { high: 8 << 20, low: 2 << 20 },
  token: { high: 64 << 20, low: 32 << 20 },
  daemon: { high: 256 << 20, low: 128 << 20 },
} as const;

/** The daemon's queues: one for all, one per token (made on first use, dropped when unused), with the token's JSON rate. */
export class SendQueues {
  readonly daemon = new SendQueue(SEND_MARKS.daemon.high, SEND_MARKS.daemon.low);
  private readonly tokens = new Map<string, { queue: SendQueue; json: RateLimit; users: number }>();

  /** A new connection's queue under its token's, and its token's JSON rate; `release` when the connection is gone. */
  forConnection(owner: string): { queue: SendQueue; json: RateLimit; release: () => void } {
    let token = this.tokens.get(owner);
    if (!token) {
      token = { queue: new SendQueue(SEND_MARKS.token.high, SEND_MARKS.token.low, this.daemon), json: new RateLimit(JSON_BYTES_PER_SECOND, JSON_BYTES_PER_SECOND), users: 0 };
      this.tokens.set(owner, token);
    }
    token.users++;
    const entry = token;
    return {
      json: entry.json,
      queue: new SendQueue(SEND_MARKS.connection.high, SEND_MARKS.connection.low, entry.queue),
      release: () => {
        if (--entry.users === 0 && entry.queue.queued === 0) this.tokens.delete(owner);
      },
    };
  }
}

/**
 * JSON text a token's connections may send per second: parsing and checking a call costs the
 * daemon's one thread ~5 ms per MiB, so a tenant sending big calls back to back is slowed to a
 * share that leaves others their turns. (Stream bytes are not parsed and not counted.)
 */
export class RateLimit {
  private tokens: number;
  private at = Date.now();

  constructor(private readonly perSecond: number, private readonly burst: number) {
    this.tokens = burst;
  }

  /** Spends `n`; returns how many ms the caller should wait before reading more (0: none). */
  take(n: number, now = Date.now()): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.perSecond) * 1000);
  }
}

export const JSON_BYTES_PER_SECOND = 16 << 20;
