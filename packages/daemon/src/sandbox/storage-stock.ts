import { basename, join } from "node:path";
import type { Logger } from "../util/log.js";
import { PreparedStorage, SandboxStorage } from "./storage.js";

export interface StockOptions {
  /** Where the file systems are mounted (the daemon's mount dir). */
  dir: string;
  /** How many prepared file systems to keep (config storageStock); 0 makes every one on the create path. */
  size: number;
  /** How far a burst of creates may grow the stock (config storageStockMax, at least `size`). */
  max: number;
  /** The size of the file systems kept: the default disk cap. */
  bytes: number;
  /** Allocate each image in full (config diskReserve). */
  reserve: boolean;
  /** Whether the host's disk may hold one more image now (the daemon's disk budget). */
  mayPrepare: () => boolean;
  /** A fresh sandbox id. */
  newId: () => string;
  log: Logger;
}

/** The storage a new sandbox will have, and the id it goes by. */
export interface StorageClaim {
  id: string;
  /** Gives the file system to host uid `uid` (making it first if it was not prepared). */
  claim(uid: number): Promise<SandboxStorage>;
  /** Gives it up unclaimed (the sandbox could not start). */
  discard(): Promise<void>;
}

/** How long the stock waits after a take before making the next file system, so it does not compete with the create that took one. */
const REFILL_DELAY_MS = 50;
/** Takes this close together count as one burst. */
const BURST_MS = 2_000;
/** How long demand is remembered: the target falls by one each time this passes without a miss. */
const DECAY_MS = 60_000;

/**
 * Sandbox file systems of the default size, formatted and mounted ahead of demand, so that
 * making one (mkfs.ext4 and the loop mount, tens of milliseconds under load) is off the create
 * path: a create claims a prepared one (three chowns and two opens) and the stock makes the next
 * one behind it, one at a time. A size the stock does not hold is made on the create path, as
 * without a stock. Like the warm pool, it sizes itself to demand: a burst of creates that found
 * it empty raises its target to the burst's size (up to `max`), and the target falls back by one
 * each DECAY_MS without such a miss, down to `size`.
 */
export class StorageStock {
  private readonly ready: PreparedStorage[] = [];
  private filling: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closing = false;
  private target: number;
  private burst = 0;
  private lastTake = 0;
  private lastMiss = 0;
  private readonly decay: NodeJS.Timeout;

  constructor(private readonly opts: StockOptions) {
    this.target = opts.size;
    this.decay = setInterval(() => this.shrink(), DECAY_MS / 4);
    this.decay.unref();
  }

  /** How many file systems it means to hold now (grown by bursts, back to `size` over time). */
  get wanted(): number {
    return this.target;
  }

  /**
   * Storage of `bytes` for a new sandbox: a prepared file system when the stock holds that size,
   * else one made at claim. The mount point is named after the sandbox (`<dir>/<id>`): a
   * prepared one was given a fresh id when it was made, which the sandbox then takes.
   */
  take(bytes: number): StorageClaim {
    const i = this.ready.findIndex((p) => p.bytes === bytes);
    if (bytes === this.opts.bytes && this.opts.size > 0) this.demanded(i < 0);
    if (i < 0) {
      const id = this.opts.newId();
      return { id, claim: (uid) => SandboxStorage.create(join(this.opts.dir, id), bytes, uid, this.opts.reserve), discard: async () => {} };
    }
    const [prepared] = this.ready.splice(i, 1);
    this.refillSoon();
    return { id: basename(prepared!.root), claim: (uid) => prepared!.claim(uid), discard: () => prepared!.destroy() };
  }

  /** The images it holds, as disk promises: they take space on the same disk as sandboxes' own. */
  claims(): Array<{ cap: number; image: string }> {
    return this.ready.map((p) => ({ cap: p.bytes, image: p.image }));
  }

  get count(): number {
    return this.ready.length;
  }

  fill(): Promise<void> {
    if (this.filling || this.closing) return this.filling ?? Promise.resolve();
    this.filling = this.refill().finally(() => (this.filling = null));
    return this.filling;
  }

  /** Stops refilling, waits for the file system being made and removes every unclaimed one. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.decay);
    if (this.timer) clearTimeout(this.timer);
    await this.filling;
    await Promise.all(this.ready.splice(0).map((p) => p.destroy().catch(() => {})));
  }

  /** Counts a take of the stock's size into its burst; a miss raises the target to the burst's size. */
  private demanded(missed: boolean): void {
    const now = Date.now();
    this.burst = now - this.lastTake <= BURST_MS ? this.burst + 1 : 1;
    this.lastTake = now;
    if (!missed) return;
    this.target = Math.max(this.target, Math.min(this.burst, this.opts.max));
    this.lastMiss = now;
    this.refillSoon();
  }

  /** Lowers a target not missed for DECAY_MS by one, removing a file system above it. */
  private shrink(): void {
    const now = Date.now();
    if (this.closing || this.target <= this.opts.size || now - this.lastMiss < DECAY_MS) return;
    this.target--;
    this.lastMiss = now - DECAY_MS / 2; // the next step down waits a while longer
    if (this.ready.length > this.target) void this.ready.pop()!.destroy().catch(() => {});
  }

  private refillSoon(): void {
    if (this.closing) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.fill();
    }, REFILL_DELAY_MS);
    this.timer.unref();
  }

  private async refill(): Promise<void> {
    try {
      while (!this.closing && this.ready.length < this.target && this.opts.mayPrepare()) {
        const prepared = await PreparedStorage.prepare(join(this.opts.dir, this.opts.newId()), this.opts.bytes, this.opts.reserve);
        if (this.closing) await prepared.destroy();
        else this.ready.push(prepared);
      }
    } catch (err) {
      if (!this.closing) this.opts.log.warn(`could not prepare a sandbox file system ahead of demand: ${(err as Error).message}`);
    }
  }
}
