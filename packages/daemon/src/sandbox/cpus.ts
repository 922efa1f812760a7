import { readFileSync } from "node:fs";

/** Parses a kernel CPU list ("0-3,8,10-11") into CPU numbers, ascending. */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.trim().split(",").filter(Boolean)) {
    const [from, to] = part.split("-").map(Number) as [number, number | undefined];
    for (let n = from; n <= (to ?? from); n++) out.push(n);
  }
  return out;
}

/** The kernel's form of a CPU list: ranges folded ("0-2,5"). */
export function formatCpuList(cpus: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < cpus.length; ) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j]! + 1) j++;
    parts.push(i === j ? String(cpus[i]) : `${cpus[i]}-${cpus[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/** The CPUs this process may run on (its affinity, within its cpuset). */
export function allowedCpus(): number[] {
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? parseCpuList(m[1]!) : [0];
}

/** Busy and total jiffies of each CPU since boot, from /proc/stat. */
function cpuTimes(): Map<number, { busy: number; total: number }> {
  const out = new Map<number, { busy: number; total: number }>();
  try {
    for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const f = m[2]!.trim().split(/\s+/).map(Number);
      const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
      const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // up to steal; guest time is counted in user already
      out.set(Number(m[1]), { busy: total - idle, total });
    }
  } catch {
    // No /proc/stat: every CPU looks idle.
  }
  return out;
}

/** How busy each CPU was since the previous reading (0..1), whoever kept it busy: sandboxes of other daemons, the host's own work. */
export class CpuLoad {
  private last = cpuTimes();
  private lastAt = Date.now();
  private busy = new Map<number, number>();

  /** The busy fraction per CPU over the last interval (refreshed when the last reading is 100 ms old or more). */
  read(): Map<number, number> {
    if (Date.now() - this.lastAt >= 100) {
      const now = cpuTimes();
      this.busy = new Map([...now].map(([cpu, t]) => {
        const before = this.last.get(cpu);
        const total = before ? t.total - before.total : 0;
        return [cpu, total > 0 ? (t.busy - before!.busy) / total : 0];
      }));
      this.last = now;
      this.lastAt = Date.now();
    }
    return this.busy;
  }
}

/**
 * Which CPUs each sandbox sees: as many as its quota rounded up, so `nproc`, `make -j$(nproc)`,
 * `os.cpu_count()` and `pytest -n auto` size themselves to what the sandbox may use. The quota
 * (cpu.max) is still the limit; the set spreads sandboxes over the host's CPUs, each sandbox
 * going to the CPUs with the least quota already placed on them plus how busy the host saw them
 * lately (other daemons' sandboxes and the host's own work count too), ties broken at random.
 */
export class CpuPlacer {
  /** Quota (in cores) of the sandboxes placed on each CPU. */
  private readonly load: Map<number, number>;

  constructor(
    readonly cpus: readonly number[] = allowedCpus(),
    private readonly busy: () => Map<number, number> = (() => {
      const load = new CpuLoad();
      return () => load.read();
    })(),
  ) {
    this.load = new Map(cpus.map((c) => [c, 0]));
  }

  /** The CPUs for a sandbox with quota `cores`; null when it gets all of them (no set to keep). */
  place(cores: number): number[] | null {
    const k = Math.ceil(cores - 1e-9);
    if (k >= this.cpus.length) return null;
    const busy = this.busy();
    const cost = new Map(this.cpus.map((c) => [c, this.load.get(c)! + (busy.get(c) ?? 0) + Math.random() * 1e-3]));
    const chosen = [...this.cpus].sort((a, b) => cost.get(a)! - cost.get(b)!).slice(0, k).sort((a, b) => a - b);
    for (const c of chosen) this.load.set(c, this.load.get(c)! + cores / k);
    return chosen;
  }

  /** A placed sandbox's quota changed from `from` to `to` cores on the same set. */
  reweigh(set: readonly number[] | null, from: number, to: number): void {
    if (!set) return;
    for (const c of set) this.load.set(c, Math.max(0, this.load.get(c)! + (to - from) / set.length));
  }

  release(set: readonly number[] | null, cores: number): void {
    if (!set) return;
    for (const c of set) this.load.set(c, Math.max(0, this.load.get(c)! - cores / set.length));
  }
}
