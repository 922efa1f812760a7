import { ByteBudget } from "@sbx/protocol";

/** The marks, per level: a connection's own, its token's (all its connections), and the daemon's. */
export const SEND_MARKS = {
  connection: { high: 8 << 20, low: 2 << 20 },
  token: { high: 64 << 20, low: 32 << 20 },
  daemon: { high: 256 << 20, low: 128 << 20 },
} as const;

/**
 * Bytes the daemon has handed to clients' WebSockets that they have not taken yet, counted per
 * connection, per token and daemon-wide: above a level's high mark the daemon stops reading from
 * that client (no new calls, credits or data) and from the sandboxes writing to it.
 * The daemon's queues: one for all, one per token (made on first use, dropped when unused), with the token's JSON rate. */
export class SendQueues {
  readonly daemon = new ByteBudget(SEND_MARKS.daemon.high, SEND_MARKS.daemon.low);
  private readonly tokens = new Map<string, { queue: ByteBudget; json: RateLimit; users: number }>();

  /** A new connection's queue under its token's, and its token's JSON rate; `release` when the connection is gone. */
  forConnection(owner: string): { queue: ByteBudget; json: RateLimit; release: () => void } {
    let token = this.tokens.get(owner);
    if (!token) {
      token = { queue: new ByteBudget(SEND_MARKS.token.high, SEND_MARKS.token.low, this.daemon), json: new RateLimit(JSON_BYTES_PER_SECOND, JSON_BYTES_PER_SECOND), users: 0 };
      this.tokens.set(owner, token);
    }
    token.users++;
    const entry = token;
    return {
      json: entry.json,
      queue: new ByteBudget(SEND_MARKS.connection.high, SEND_MARKS.connection.low, entry.queue),
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
