// cgroups: the throwaway ones the hardening replay (rows 6) joins, and the daemon's own, read.
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, sleep } from "./env.mjs";

export const CG_CONTROLLERS = ["memory", "cpu", "cpuacct", "pids"];
const BENCH_CG = `sbx-bench-${process.pid}`;

/** sbx-launch as built (the daemon runs the same file from its dist/). */
export const LAUNCHER = join(ROOT, "packages/daemon/dist/sbx-launch");

/**
 * The daemon's root-mode launch prefix for host uid `uid` (launcher.ts `launchArgv`): sbx-launch
 * joins the cgroups and sets oom_score_adj as root, sets the rlimits, drops to the uid, execs.
 */
export function hardenedPrefix(capture, uid, procsFiles) {
  if (!existsSync(LAUNCHER)) throw new Error(`${LAUNCHER} is missing: build @sbx/daemon first`);
  return [
    LAUNCHER, ...procsFiles.flatMap((f) => ["--cgroup-procs", f]), "--oom-score-adj", capture.hardening.oomScoreAdj,
    ...capture.hardening.rlimits, "--uid", String(uid), "--",
  ];
}

/** Controller dirs (deduplicated where two names reach one hierarchy) for this bench's cgroup `n`. */
function benchCgroupDirs(n) {
  const dirs = new Map();
  for (const c of CG_CONTROLLERS) dirs.set(c, join(realpathSync(join("/sys/fs/cgroup", c)), BENCH_CG, String(n)));
  return dirs;
}

/** A throwaway cgroup with the limits the daemon wrote for the captured sandbox: its procs files. */
export function makeBenchCgroup(n, values) {
  const dirs = benchCgroupDirs(n);
  const made = [...new Set(dirs.values())];
  for (const dir of made) mkdirSync(dir, { recursive: true });
  const put = (c, file) => values[file] !== null && values[file] !== undefined && writeFileSync(join(dirs.get(c), file), values[file]);
  put("memory", "memory.limit_in_bytes");
  if (existsSync(join(dirs.get("memory"), "memory.memsw.limit_in_bytes"))) put("memory", "memory.memsw.limit_in_bytes");
  put("cpu", "cpu.cfs_period_us");
  put("cpu", "cpu.cfs_quota_us");
  put("pids", "pids.max");
  return { n, made, procsFiles: made.map((d) => join(d, "cgroup.procs")) };
}

/** Kills what is left in it and removes it, retrying while the kernel finishes the exits. */
export async function removeBenchCgroup(cg) {
  for (const dir of cg.made) {
    for (let attempt = 0; ; attempt++) {
      try {
        for (const pid of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {}
        }
        rmdirSync(dir);
        break;
      } catch (err) {
        if (err.code === "ENOENT") break;
        if (err.code !== "EBUSY" || attempt > 250) throw err;
        await sleep(4);
      }
    }
  }
}

export function removeBenchCgroupBases() {
  for (const c of CG_CONTROLLERS) {
    const base = join(realpathSync(join("/sys/fs/cgroup", c)), BENCH_CG);
    if (!existsSync(base)) continue;
    for (const e of readdirSync(base, { withFileTypes: true })) if (e.isDirectory()) try { rmdirSync(join(base, e.name)); } catch {}
    try { rmdirSync(base); } catch {}
  }
}

/** memory.usage_in_bytes (v1) or memory.current (v2) of each sandbox cgroup of one daemon. */
export function cgroupCharges(name) {
  for (const [base, file] of [[join("/sys/fs/cgroup/memory", name), "memory.usage_in_bytes"], [join("/sys/fs/cgroup", name), "memory.current"]]) {
    if (!existsSync(base)) continue;
    return readdirSync(base, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => Number(readFileSync(join(base, e.name, file), "utf8")));
  }
  return [];
}
