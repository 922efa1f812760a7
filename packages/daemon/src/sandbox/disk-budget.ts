import { statfsSync, statSync } from "node:fs";
import { DaemonError } from "../util/errors.js";
import type { Logger } from "../util/log.js";

/**
 * What the daemon promises about sandboxes' disks (root mode, where each sandbox's writable
 * storage is an ext4 image on the state dir's file system). A cap is either reserved up front
 * (`diskReserve`: the image is fully allocated, so writes inside can never find the host disk
 * full) or promised against free space, at most `diskOvercommit` times over. Either way a
 * sandbox is refused when the promise cannot be kept, and when caps are overcommitted the
 * caller is told so in `create`'s warnings, and the daemon says so in its log.
 */
export interface DiskPolicy {
  reserve: boolean;
  /** How many times over the free space the unreserved caps may add up to (1: never more than is free). */
  overcommit: number;
  /** Free space kept out of every promise; below it no sandbox is created. */
  minFreeBytes: number;
}

export const DEFAULT_DISK_POLICY: DiskPolicy = { reserve: false, overcommit: 10, minFreeBytes: 1 << 30 };

/** A live sandbox's storage, as far as promises go: its cap and its image. */
export interface DiskClaim {
  cap: number;
  image: string;
}

export class DiskBudget {
  private low = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly dir: string,
    readonly policy: DiskPolicy,
    private readonly log: Logger,
  ) {}

  /** Says at start what is promised, loudly when caps are not reserved. */
  describe(): void {
    const free = formatBytes(this.free());
    if (this.policy.reserve) {
      this.log.info(`disk: every sandbox's cap is reserved in full on ${this.dir} (${free} free; diskReserve)`);
    } else {
      this.log.warn(
        `disk: sandboxes' caps are not reserved: together they may promise up to ${this.policy.overcommit}× the free space of ${this.dir} (${free} free; diskOvercommit). ` +
          "If that disk fills, writes inside sandboxes fail with I/O errors (fs.writeFile reports them). Set diskOvercommit: 1 to promise only what is free, or diskReserve: true to reserve each cap.",
      );
    }
  }

  /** Admits storage of `cap` beside `live` sandboxes', or throws ResourceLimit saying why. */
  admit(cap: number, live: readonly DiskClaim[]): void {
    const { refusal } = this.judge(cap, live);
    if (refusal) throw new DaemonError("ResourceLimit", refusal);
  }

  /** Whether a sandbox with `cap` would be admitted now (for work done ahead of demand, which must not be refused later). */
  allows(cap: number, live: readonly DiskClaim[]): boolean {
    return !this.judge(cap, live).refusal;
  }

  /** What the owner of a sandbox with `cap` should be told about it beside `others` (an overcommitted cap). */
  warnings(cap: number, others: readonly DiskClaim[]): string[] {
    return this.judge(cap, others).warnings;
  }

  private judge(cap: number, live: readonly DiskClaim[]): { refusal?: string; warnings: string[] } {
    const free = this.free();
    const available = free - this.policy.minFreeBytes;
    if (available <= 0) {
      return { refusal: `the disk holding sandboxes' storage (${this.dir}) has ${formatBytes(free)} free, below the ${formatBytes(this.policy.minFreeBytes)} the daemon keeps free (diskMinFree): no new sandbox until space is freed`, warnings: [] };
    }
    if (this.policy.reserve) {
      return cap > available ? { refusal: `disk: a ${formatBytes(cap)} cap cannot be reserved: ${formatBytes(available)} of ${this.dir} are free to reserve (diskReserve); ask for a smaller disk`, warnings: [] } : { warnings: [] };
    }
    // What is promised and not yet used: each cap less what its image already holds.
    const promised = live.reduce((sum, c) => sum + Math.max(0, c.cap - allocated(c.image)), 0) + cap;
    if (promised > this.policy.overcommit * available) {
      return {
        refusal: `disk: sandboxes would be promised ${formatBytes(promised)} on ${this.dir}, more than ${this.policy.overcommit}× its ${formatBytes(available)} free (diskOvercommit); ask for a smaller disk or free space`,
        warnings: [],
      };
    }
    if (promised <= available) return { warnings: [] };
    return { warnings: [`disk: the ${formatBytes(cap)} cap is not reserved: the host disk holding sandboxes has ${formatBytes(available)} free for ${formatBytes(promised)} promised to this and ${live.length} other sandboxes; if it fills, writes fail with an I/O error`] };
  }

  /** Checks the free space every `everyMs`, logging once each time it drops below the minimum (and once it recovers). */
  watch(everyMs = 10_000): void {
    this.timer = setInterval(() => {
      const free = this.free();
      const low = free < this.policy.minFreeBytes;
      if (low !== this.low) {
        this.low = low;
        if (low) this.log.error(`disk: ${this.dir} has ${formatBytes(free)} free, below diskMinFree (${formatBytes(this.policy.minFreeBytes)}): new sandboxes are refused, and running ones may see write errors`);
        else this.log.info(`disk: ${this.dir} has ${formatBytes(free)} free again`);
      }
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private free(): number {
    const st = statfsSync(this.dir);
    return st.bavail * st.bsize;
  }
}

/** Bytes for people: "7.1 GiB", "512 MiB". */
function formatBytes(n: number): string {
  for (const [unit, size] of [["TiB", 2 ** 40], ["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const) {
    if (n >= size) return `${Number((n / size).toFixed(1))} ${unit}`;
  }
  return `${n} B`;
}

/** Bytes an image file occupies on the host (sparse images hold only what was written). */
function allocated(image: string): number {
  try {
    return statSync(image).blocks * 512;
  } catch {
    return 0;
  }
}
