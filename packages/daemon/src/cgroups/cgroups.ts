import { existsSync, readFileSync, realpathSync, statSync, writeFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { formatCpuList } from "../sandbox/cpus.js";

/** What a sandbox's cgroup enforces. */
export interface CgroupLimits {
  memoryBytes: number;
  cpus: number;
  pids: number;
  /** The CPUs the sandbox may run on (cpuset), null for all; enforced where the cpuset controller exists. */
  cpuSet?: readonly number[] | null;
}

/** The kernel's own accounting for one sandbox. */
export interface CgroupStats {
  cpuSeconds: number;
  memoryBytes: number;
  memoryPeakBytes: number;
  oomKills: number;
}

/** One sandbox's cgroup(s): join by writing "0" to each procs file before exec'ing bwrap, or be born in `bornIn`. */
export interface SandboxCgroup {
  readonly procsFiles: string[];
  /** v2 with `bornInCgroup`: the directory the launch starts its child in (clone3 CLONE_INTO_CGROUP), instead of joining. */
  readonly bornIn: string | null;
  /** Sets new memory and CPU caps on the live cgroup (a pooled sandbox claimed with other limits). */
  retune(limits: { memoryBytes: number; cpus: number }): Promise<void>;
  stats(): CgroupStats;
  /** The one figure of `stats()` a caller on a hot path needs, reading one file: CPU seconds used so far. */
  cpuSeconds(): number;
  /** … and OOM kills the cgroup has seen (read on every process exit). */
  oomKills(): number;
  /** Kills anything left inside and removes the cgroup (it must be empty of live tasks). */
  destroy(): Promise<void>;
}

export interface CgroupDriver {
  readonly version: 1 | 2;
  /** Directories under which sandbox cgroups are made (the reaper cleans them if the daemon dies). */
  readonly baseDirs: string[];
  create(id: string, limits: CgroupLimits): Promise<SandboxCgroup>;
  /** Removes cgroups a crashed daemon left behind; returns how many. */
  reclaim(): Promise<number>;
  /** Removes this daemon's own (empty) base directories at shutdown. */
  removeBase(): Promise<void>;
}

async function removeBases(dirs: string[]): Promise<void> {
  for (const dir of dirs) await fsp.rmdir(dir).catch(() => {});
}

const CPU_PERIOD_US = 100_000;

const readNumber = (path: string): number => {
  try {
    return Number(readFileSync(path, "utf8").trim()) || 0;
  } catch {
    return 0;
  }
};

const readKeyed = (path: string, key: string): number => {
  try {
    const m = new RegExp(`^${key}\\s+(\\d+)`, "m").exec(readFileSync(path, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
};

/** Kills every task in a cgroup dir and removes it, retrying while the kernel finishes exits. */
async function removeCgroup(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      for (const pid of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {}
      }
      await fsp.rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY") throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error(`cgroup ${dir} stayed busy`);
}

async function reclaimUnder(base: string): Promise<number> {
  let n = 0;
  for (const name of await fsp.readdir(base).catch(() => [] as string[])) {
    const dir = join(base, name);
    if (!statSync(dir).isDirectory()) continue;
    await removeCgroup(dir);
    n++;
  }
  return n;
}

/**
 * Writes v1 memory and CPU caps. The kernel keeps memory.memsw.limit_in_bytes (memory + swap) at
 * or above memory.limit_in_bytes, so a cap that grows raises memsw first and one that shrinks
 * lowers the memory limit first; `from` is the memory cap set now (null on a new cgroup).
 */
/** The caps of one v1 cgroup in the order the kernel takes them (memsw raised before memory, lowered after it), and the CPU quota. */
function v1CapWrites(d: { memory: string; cpu: string }, caps: { memoryBytes: number; cpus: number }, from: number | null): [file: string, value: string][] {
  const memsw = join(d.memory, "memory.memsw.limit_in_bytes");
  // No swap beyond the limit, where the kernel accounts swap at all.
  const memory = [join(d.memory, "memory.limit_in_bytes"), ...(existsSync(memsw) ? [memsw] : [])];
  if (from !== null && caps.memoryBytes > from) memory.reverse();
  return [...memory.map((file): [string, string] => [file, String(caps.memoryBytes)]), [join(d.cpu, "cpu.cfs_quota_us"), String(Math.round(caps.cpus * CPU_PERIOD_US))]];
}

const v2CapWrites = (dir: string, caps: { memoryBytes: number; cpus: number }): [file: string, value: string][] => [
  [join(dir, "memory.max"), String(caps.memoryBytes)],
  [join(dir, "cpu.max"), `${Math.round(caps.cpus * CPU_PERIOD_US)} ${CPU_PERIOD_US}`],
];

async function writeAll(writes: [file: string, value: string][]): Promise<void> {
  for (const [file, value] of writes) await fsp.writeFile(file, value);
}

/**
 * Retunes a live cgroup: a pooled sandbox claimed by a create with other limits, on the create's
 * reply path. Each write is one blocking call of some microseconds where fs.promises takes an
 * open, a write and a close through the thread pool. Blocking is safe here: the sandbox is idle
 * (a supervisor and a few MiB), far below the smallest memory cap (128 MiB), so lowering it
 * never waits on reclaim.
 */
function writeAllNow(writes: [file: string, value: string][]): Promise<void> {
  try {
    for (const [file, value] of writes) writeFileSync(file, value);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** cgroup v1: separate memory, cpu, cpuacct and pids hierarchies under /sys/fs/cgroup/<controller>. */
export class CgroupV1Driver implements CgroupDriver {
  readonly version = 1 as const;
  readonly baseDirs: string[];
  private readonly dirs: { memory: string; cpu: string; cpuacct: string; pids: string };
  /** The cpuset hierarchy's base, where the host mounts one (sandboxes with a CPU set join it). */
  private readonly cpuset: string | null;

  constructor(root = "/sys/fs/cgroup", name = "sbx") {
    // cpu and cpuacct are often one hierarchy reached by two names (cpu,cpuacct): resolve them.
    const at = (controller: string) => join(realpathSync(join(root, controller)), name);
    this.dirs = { memory: at("memory"), cpu: at("cpu"), cpuacct: at("cpuacct"), pids: at("pids") };
    this.cpuset = existsSync(join(root, "cpuset", "cpuset.cpus")) ? at("cpuset") : null;
    this.baseDirs = [...new Set([...Object.values(this.dirs), ...(this.cpuset ? [this.cpuset] : [])])];
  }

  /** v1 cpusets start empty: a new one must be given CPUs and memory nodes before anything joins it. */
  private async makeCpuset(dir: string, cpus: string): Promise<void> {
    const parent = join(dir, "..");
    await fsp.mkdir(dir);
    await fsp.writeFile(join(dir, "cpuset.mems"), readFileSync(join(parent, "cpuset.mems"), "utf8").trim());
    await fsp.writeFile(join(dir, "cpuset.cpus"), cpus);
  }

  async create(id: string, limits: CgroupLimits): Promise<SandboxCgroup> {
    for (const base of this.baseDirs) {
      if (base !== this.cpuset) await fsp.mkdir(base, { recursive: true });
      else if (!existsSync(base)) {
        try {
          await this.makeCpuset(base, readFileSync(join(base, "..", "cpuset.cpus"), "utf8").trim());
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        }
      }
    }
    const d = {
      memory: join(this.dirs.memory, id),
      cpu: join(this.dirs.cpu, id),
      cpuacct: join(this.dirs.cpuacct, id),
      pids: join(this.dirs.pids, id),
    };
    const made = [...new Set(Object.values(d))];
    try {
      for (const dir of made) await fsp.mkdir(dir);
      if (this.cpuset && limits.cpuSet) {
        const dir = join(this.cpuset, id);
        await this.makeCpuset(dir, formatCpuList(limits.cpuSet));
        made.push(dir);
      }
      await fsp.writeFile(join(d.cpu, "cpu.cfs_period_us"), String(CPU_PERIOD_US));
      await writeAll(v1CapWrites(d, limits, null));
      await fsp.writeFile(join(d.pids, "pids.max"), String(limits.pids));
    } catch (err) {
      for (const dir of made) await removeCgroup(dir).catch(() => {});
      throw err;
    }
    let memoryBytes = limits.memoryBytes;
    const cpuSeconds = () => readNumber(join(d.cpuacct, "cpuacct.usage")) / 1e9;
    const oomKills = () => readKeyed(join(d.memory, "memory.oom_control"), "oom_kill");
    return {
      procsFiles: made.map((dir) => join(dir, "cgroup.procs")),
      bornIn: null,
      retune: async (caps) => {
        await writeAllNow(v1CapWrites(d, caps, memoryBytes));
        memoryBytes = caps.memoryBytes;
      },
      cpuSeconds,
      oomKills,
      stats: () => ({
        cpuSeconds: cpuSeconds(),
        memoryBytes: readNumber(join(d.memory, "memory.usage_in_bytes")),
        memoryPeakBytes: readNumber(join(d.memory, "memory.max_usage_in_bytes")),
        oomKills: oomKills(),
      }),
      destroy: async () => {
        for (const dir of made) await removeCgroup(dir);
      },
    };
  }

  async reclaim(): Promise<number> {
    let n = 0;
    for (const base of this.baseDirs) n = Math.max(n, await reclaimUnder(base));
    return n;
  }

  removeBase(): Promise<void> {
    return removeBases(this.baseDirs);
  }
}


/** cgroup v2: one unified hierarchy; sandboxes live under <root>/<name>. */
export class CgroupV2Driver implements CgroupDriver {
  readonly version = 2 as const;
  readonly baseDirs: string[];

  /**
   * bornInCgroup: sandboxes are started in their cgroup (sbx-launch --cgroup-dir) rather than
   * moved into it, for hosts where a move waits for an RCU grace period (favordynmods off).
   */
  constructor(
    private readonly root = "/sys/fs/cgroup",
    name = "sbx",
    private readonly bornInCgroup = false,
  ) {
    this.baseDirs = [join(root, name)];
  }

  async create(id: string, limits: CgroupLimits): Promise<SandboxCgroup> {
    const base = this.baseDirs[0]!;
    await fsp.mkdir(base, { recursive: true });
    // Controllers must be enabled for children at every level down to the sandbox.
    const cpuset = !!limits.cpuSet && this.hasCpuset();
    for (const dir of [this.root, base]) await fsp.writeFile(join(dir, "cgroup.subtree_control"), `+memory +cpu +pids${cpuset ? " +cpuset" : ""}`);
    const dir = join(base, id);
    await fsp.mkdir(dir);
    try {
      if (cpuset) await fsp.writeFile(join(dir, "cpuset.cpus"), formatCpuList(limits.cpuSet!));
      await writeAll(v2CapWrites(dir, limits));
      if (existsSync(join(dir, "memory.swap.max"))) await fsp.writeFile(join(dir, "memory.swap.max"), "0");
      await fsp.writeFile(join(dir, "pids.max"), String(limits.pids));
    } catch (err) {
      await removeCgroup(dir).catch(() => {});
      throw err;
    }
    let peak = 0;
    const cpuSeconds = () => readKeyed(join(dir, "cpu.stat"), "usage_usec") / 1e6;
    const oomKills = () => readKeyed(join(dir, "memory.events"), "oom_kill");
    return {
      procsFiles: this.bornInCgroup ? [] : [join(dir, "cgroup.procs")],
      bornIn: this.bornInCgroup ? dir : null,
      retune: (caps) => writeAllNow(v2CapWrites(dir, caps)),
      cpuSeconds,
      oomKills,
      stats: () => {
        const current = readNumber(join(dir, "memory.current"));
        // memory.peak exists from Linux 5.19; before that the highest value we sampled stands in.
        peak = Math.max(peak, current, readNumber(join(dir, "memory.peak")));
        return { cpuSeconds: cpuSeconds(), memoryBytes: current, memoryPeakBytes: peak, oomKills: oomKills() };
      },
      destroy: () => removeCgroup(dir),
    };
  }

  private hasCpuset(): boolean {
    try {
      return readFileSync(join(this.root, "cgroup.controllers"), "utf8").split(/\s+/).includes("cpuset");
    } catch {
      return false;
    }
  }

  reclaim(): Promise<number> {
    return reclaimUnder(this.baseDirs[0]!);
  }

  removeBase(): Promise<void> {
    return removeBases(this.baseDirs);
  }
}

/** Which cgroup driver this host supports for a daemon running as root, or why none. */
/** `bornInCgroup` (v2 only): start sandboxes in their cgroup instead of moving them (see CgroupV2Driver). */
export function detectCgroups(root = "/sys/fs/cgroup", name = "sbx", bornInCgroup = false): CgroupDriver | string {
  if (existsSync(join(root, "cgroup.controllers"))) {
    const controllers = readFileSync(join(root, "cgroup.controllers"), "utf8");
    const missing = ["memory", "cpu", "pids"].filter((c) => !controllers.split(/\s+/).includes(c));
    return missing.length ? `cgroup v2 lacks the ${missing.join(", ")} controller(s)` : new CgroupV2Driver(root, name, bornInCgroup);
  }
  const missing = ["memory", "cpu", "cpuacct", "pids"].filter((c) => !existsSync(join(root, c, "cgroup.procs")));
  return missing.length ? `cgroup v1 lacks the ${missing.join(", ")} hierarchy(ies) under ${root}` : new CgroupV1Driver(root, name);
}
