/**
 * Bytes the gateway has handed to a socket that the socket has not written out yet, counted
 * per socket and gateway-wide. Whoever feeds a socket over its high mark stops reading its own
 * source until the level is back under the low mark: a peer that stops reading (a client, or a
 * daemon) costs the gateway a bounded amount, and TCP carries the wait back to the sender.
 */
export class ByteBudget {
  private bytes = 0;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly high: number,
    readonly low: number,
    private readonly parent: ByteBudget | null = null,
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

  /** True when this level or an ancestor is over its high mark. */
  congested(): boolean {
    return this.bytes > this.high || (this.parent?.congested() ?? false);
  }

  /** Resolves once every level is at or under its low mark again. */
  async drained(): Promise<void> {
    for (let level = this.overLow(); level; level = this.overLow()) {
      await new Promise<void>((resolve) => level.waiters.add(resolve));
    }
  }

  private overLow(): ByteBudget | null {
    if (this.bytes > this.low) return this;
    return this.parent?.overLow() ?? null;
  }
}

/** The marks per socket and for the whole gateway (the daemon's per-connection and daemon-wide marks). */
export const MARKS = {
  socket: { high: 8 << 20, low: 2 << 20 },
  gateway: { high: 256 << 20, low: 128 << 20 },
} as const;
