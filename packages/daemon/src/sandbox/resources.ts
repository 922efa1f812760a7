import { join } from "node:path";
import type { CgroupDriver, SandboxCgroup } from "../cgroups/cgroups.js";
import type { SandboxLimits } from "./limits.js";
import { SandboxStorage } from "./storage.js";
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
    private readonly onRelease: () => void,
  ) {}

  /** Undoes everything, once every process of the sandbox is gone. */
  async release(): Promise<void> {
    try {
      await this.cgroup?.destroy();
      await this.storage?.destroy();
    } finally {
      this.onRelease();
    }
  }
}

export interface ResourceOptions {
  uids: UidPool | null;
  cgroups: CgroupDriver | null;
  mountDir: string;
  pidsPerSandbox: number;
  /** Spreads sandboxes' CPU sets over the host's CPUs. */
  cpus: CpuPlacer;
  /** Allocate each storage image in full (config diskReserve). */
  reserveDisk: boolean;
}

/** Hands out per-sandbox host resources, undoing the parts already taken when a later one fails. */
export async function acquireResources(opts: ResourceOptions, id: string, limits: SandboxLimits): Promise<SandboxResources> {
  const cpuSet = opts.cpus.place(limits.cpus);
  const unplace = () => opts.cpus.release(cpuSet, limits.cpus);
  if (!opts.uids) return new SandboxResources(null, null, null, cpuSet, unplace);
  const uids = opts.uids;
  const hostUid = uids.take();
  let storage: SandboxStorage | null = null;
  try {
    storage = await SandboxStorage.create(join(opts.mountDir, id), limits.diskBytes, hostUid, opts.reserveDisk);
    const cgroup = opts.cgroups ? await opts.cgroups.create(id, { memoryBytes: limits.memoryBytes, cpus: limits.cpus, pids: opts.pidsPerSandbox, cpuSet }) : null;
    return new SandboxResources(hostUid, storage, cgroup, cpuSet, () => {
      uids.release(hostUid);
      unplace();
    });
  } catch (err) {
    await storage?.destroy().catch(() => {});
    uids.release(hostUid);
    unplace();
    throw err;
  }
}
