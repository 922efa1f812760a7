/**
 * Bytes handed to a sink (a WebSocket, a socket) that it has not taken yet, counted at nested
 * levels (a connection under its token under the whole process). Whoever feeds a sink whose
 * level, or an ancestor's, is over its high mark stops reading its own source until every level
 * is back under its low mark: a peer that stops reading costs a bounded amount, and its
 * neighbours nothing. Shared by the daemon (client connections) and the gateway (sockets).
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

  /** The first level (this or an ancestor) over its high mark, or null. */
  congested(): ByteBudget | null {
    if (this.bytes > this.high) return this;
    return this.parent?.congested() ?? null;
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
