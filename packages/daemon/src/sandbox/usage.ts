import { readFileSync, statfsSync } from "node:fs";
import type { ResultOf } from "@sbx/protocol";
import type { SandboxCgroup } from "../cgroups/cgroups.js";

/** What a sandbox used, as `sandbox.usage()` reports it (without its status). */
export type Usage = Omit<ResultOf<"sandbox.usage">, "status">;

const TICKS = 100; // USER_HZ on Linux

/** utime+stime+cutime+cstime of a host pid and its live descendants, in seconds. */
function processTreeCpu(pid: number): { cpu: number; rss: number } {
  let cpu = 0;
  let rss = 0;
  const visit = (p: number) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      cpu += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICKS;
      rss += Number(f[21]) * 4096;
      for (const task of readFileSync(`/proc/${p}/task/${p}/children`, "utf8").split(" ").filter(Boolean)) visit(Number(task));
    } catch {
      // the process exited meanwhile
    }
  };
  visit(pid);
  return { cpu, rss };
}

/**
 * Meters one sandbox from the kernel's own accounting: its cgroup when there is one, its
 * process tree otherwise. Memory GB-seconds integrate sampled usage over wall time.
 */
export class UsageMeter {
  private started = Date.now();
  private lastSample = this.started;
  /** CPU already used when the sandbox was handed out (a warm sandbox's start-up is not the user's). */
  private cpuBase = 0;
  private gbSeconds = 0;
  private peak = 0;
  private cpu = 0;
  private disk = 0;
  private finalUsage: Usage | null = null;

  constructor(
    private readonly cgroup: SandboxCgroup | null,
    private readonly rootPid: number,
    /** Paths whose file systems hold the sandbox's writable storage. */
    private readonly storagePaths: () => string[],
    /** The sandbox's egress counters. */
    private readonly egress: () => Usage["egress"],
  ) {}

  /**
   * Starts the clock now: called when the sandbox is handed to its owner, on the create's path,
   * so it reads only the CPU counter (one file); memory, peak and disk wait for the next sample.
   */
  rebase(): void {
    if (this.finalUsage) return;
    this.cpu = this.cgroup ? this.cgroup.cpuSeconds() : Math.max(this.cpu, processTreeCpu(this.rootPid).cpu);
    this.cpuBase = this.cpu;
    this.started = this.lastSample = Date.now();
    this.gbSeconds = 0;
  }

  sample(): void {
    if (this.finalUsage) return;
    const now = Date.now();
    let memory: number;
    if (this.cgroup) {
      const s = this.cgroup.stats();
      memory = s.memoryBytes;
      this.cpu = s.cpuSeconds;
      this.peak = Math.max(this.peak, s.memoryPeakBytes, memory);
    } else {
      const t = processTreeCpu(this.rootPid);
      memory = t.rss;
      this.cpu = Math.max(this.cpu, t.cpu);
      this.peak = Math.max(this.peak, memory);
    }
    this.gbSeconds += (memory / 1e9) * ((now - this.lastSample) / 1000);
    this.lastSample = now;
    let disk = 0;
    for (const path of this.storagePaths()) {
      try {
        const st = statfsSync(path);
        disk += (st.blocks - st.bfree) * st.bsize;
      } catch {}
    }
    if (this.storagePaths().length) this.disk = disk;
  }

  /** Oom kills the cgroup has seen so far (0 without one). */
  oomKills(): number {
    return this.cgroup?.oomKills() ?? 0;
  }

  current(): Usage {
    if (this.finalUsage) return this.finalUsage;
    this.sample();
    return this.sampled();
  }

  /** The figures as of the last sample (the daemon samples every sandbox every few seconds), reading nothing: for /metrics scrapes. */
  sampled(): Usage {
    if (this.finalUsage) return this.finalUsage;
    return {
      cpuSeconds: round(Math.max(0, this.cpu - this.cpuBase), 3),
      memoryPeakBytes: this.peak,
      memoryGbSeconds: round(this.gbSeconds, 6),
      diskBytes: this.disk,
      wallSeconds: round((Date.now() - this.started) / 1000, 3),
      egress: this.egress(),
      approximate: this.cgroup === null,
    };
  }

  /** Freezes the figures: call just before the sandbox's resources are released. */
  finish(): Usage {
    this.finalUsage ??= this.current();
    return this.finalUsage;
  }
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;
