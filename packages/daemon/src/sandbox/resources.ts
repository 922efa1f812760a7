import type { CgroupDriver, SandboxCgroup } from "../cgroups/cgroups.js";
import type { SandboxLimits } from "./limits.js";
import type { SandboxStorage } from "./storage.js";
import type { StorageClaim } from "./storage-stock.js";
import type { UidPool } from "./uids.js";
import type { CpuPlacer } from "./cpus.js";

/** What the host sets aside for one sandbox in root mode: a uid, a storage mount, a cgroup. */
export class SandboxResources {
  constructor(
    readonly hostUid: number | null,
    readonly storage: SandboxStorage | null,
    readonly cgroup: SandboxCgroup | null,
    /** The CPUs it runs on (its quota rounded up), null for all of them. */
    readonly cpuSet: readonly number[] | null,
    /** Its CPU quota as placed on `cpuSet`. */
    private cores: number,
    private readonly cpus: CpuPlacer,
    private readonly onRelease: () => void,
  ) {}

  /**
   * New memory and CPU caps for the live sandbox (a pooled one claimed with other limits). The
   * quota must round up to as many CPUs as `cpuSet` holds: the set is what its processes see.
   */
  async retune(limits: { memoryBytes: number; cpus: number }): Promise<void> {
    if (setSize(this.cpus, limits.cpus) !== setSize(this.cpus, this.cores)) throw new Error(`a quota of ${limits.cpus} CPUs needs another CPU set than the one the sandbox runs on`);
    await this.cgroup?.retune(limits);
    this.cpus.reweigh(this.cpuSet, this.cores, limits.cpus);
    this.cores = limits.cpus;
  }

  /** Undoes everything, once every process of the sandbox is gone. */
  async release(): Promise<void> {
    try {
      await this.cgroup?.destroy();
      await this.storage?.destroy();
    } finally {
      this.cpus.release(this.cpuSet, this.cores);
      this.onRelease();
    }
  }
}

/** How many CPUs a sandbox with `cores` sees: its quota rounded up, all of them at most. */
export function setSize(cpus: CpuPlacer, cores: number): number {
  return Math.min(cpus.cpus.length, Math.ceil(cores - 1e-9));
}

export interface ResourceOptions {
  /** Where its host uid comes from (a block's user for a sandbox booted from an image). */
  uids: Pick<UidPool, "take" | "release"> | null;
  cgroups: CgroupDriver | null;
  pidsPerSandbox: number;
  /** Spreads sandboxes' CPU sets over the host's CPUs. */
  cpus: CpuPlacer;
}

/** Hands out per-sandbox host resources, undoing the parts already taken when a later one fails. */
export async function acquireResources(opts: ResourceOptions, storage: StorageClaim, limits: SandboxLimits): Promise<SandboxResources> {
  const { id } = storage;
  const cpuSet = opts.cpus.place(limits.cpus);
  if (!opts.uids) return new SandboxResources(null, null, null, cpuSet, limits.cpus, opts.cpus, () => {});
  const uids = opts.uids;
  let hostUid: number;
  try {
    hostUid = uids.take();
  } catch (err) {
    await storage.discard().catch(() => {});
    opts.cpus.release(cpuSet, limits.cpus);
    throw err;
  }
  // The file system and the cgroup are made side by side: neither waits on the other.
  const made = await Promise.allSettled([
    storage.claim(hostUid),
    opts.cgroups ? opts.cgroups.create(id, { memoryBytes: limits.memoryBytes, cpus: limits.cpus, pids: opts.pidsPerSandbox, cpuSet }) : Promise.resolve(null),
  ] as const);
  const [fs, cgroup] = made;
  try {
    if (fs.status === "rejected") throw fs.reason;
    if (cgroup.status === "rejected") throw cgroup.reason;
    return new SandboxResources(hostUid, fs.value, cgroup.value, cpuSet, limits.cpus, opts.cpus, () => uids.release(hostUid));
  } catch (err) {
    if (fs.status === "fulfilled") await fs.value.destroy().catch(() => {});
    if (cgroup.status === "fulfilled") await cgroup.value?.destroy().catch(() => {});
    uids.release(hostUid);
    opts.cpus.release(cpuSet, limits.cpus);
    throw err;
  }
}
