// Issue 11's density target measured, not extrapolated: DENSITY_N (default 1,000, the daemon's
// default maxSandboxes) idle sandboxes alive at once on one daemon, each after one `true`, and
// what they take from the host (row 5's measurement, bench/rows/idle.mjs, at that count). Target:
// 1,000 idle sandboxes with at least 90 % of the host's memory left. Writes its section of
// bench/RESULTS.md. Run: node bench/density.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { BENCH, CFG, log } from "./lib/env.mjs";
import { floorUids, startDaemon } from "./lib/daemon.mjs";
import { mb } from "./lib/stats.mjs";
import { waitNoSandboxProcs } from "./lib/proc.mjs";
import { measureIdle } from "./rows/idle.mjs";

const N = Number(process.env.DENSITY_N ?? 1000);
const RESULTS = join(BENCH, "RESULTS.md");
const LEFT_TARGET = 0.9;

if (process.getuid?.() !== 0) throw new Error("run as root: sandboxes run as their own host uids");
const loadStart = loadavg()[0].toFixed(2);
CFG.idleN = N;
const d = await startDaemon({ warmPool: 0, config: { maxSandboxes: Math.max(N, 1000) } });
let idle;
try {
  await waitNoSandboxProcs(null, 2000);
  log(`${N.toLocaleString("en-US")} idle sandboxes on one daemon (pid ${d.proc.pid})`);
  idle = await measureIdle(d, floorUids(d));
} finally {
  await d.stop();
}

const gb = (x) => `${(x / 1024).toFixed(2)} GiB`;
const pct = (x) => `${(100 * x).toFixed(1)} %`;
// What the N sandboxes take from the host, both ways row 5 counts it (the larger decides).
const takenByAvail = idle.availDropUsed;
const takenByPss = (idle.treePss + Math.max(0, idle.kernelPerSandbox)) * N;
const taken = Math.max(takenByAvail, takenByPss);
const left = 1 - taken / idle.memTotalMb;
const met = left >= LEFT_TARGET;
const section = [
  `<!-- density:start (bench/density.mjs, ${new Date().toISOString()}; ${cpus().length} cores; load ${loadStart} → ${loadavg()[0].toFixed(2)}) -->`,
  "## Density: idle sandboxes alive at once",
  "",
  `${N.toLocaleString("en-US")} sandboxes from one daemon (warm pool off), each made by \`Sandbox.create()\` one after the other and then running one \`true\`, all alive together: the count row 5 extrapolates to, measured by row 5's own code (\`bench/rows/idle.mjs\`). Target: 1,000 idle sandboxes on this ${gb(idle.memTotalMb)} host with at least 90 % of its memory left.`,
  "",
  "| metric | measured | target | met |",
  "|---|---|---|---|",
  `| idle sandboxes alive at once | ${N.toLocaleString("en-US")} (created in ${idle.createSeconds.toFixed(0)} s, ${((1000 * idle.createSeconds) / N).toFixed(0)} ms each on average) | 1,000 | ${N >= 1000 ? "yes" : "**no**"} |`,
  `| host memory they take: MemAvailable drop / PSS of their processes, the daemon's growth and unreclaimable kernel memory | ${gb(takenByAvail)} / ${gb(takenByPss)} |  |  |`,
  `| … per sandbox | ${mb(takenByAvail / N)} / ${mb(takenByPss / N)} (PSS ${mb(idle.usedPss)}, daemon ${mb(Math.max(0, idle.daemonPssGrowthUsed) / N)}, kernel ${mb(idle.kernelPerSandbox)}) |  |  |`,
  `| host memory left (the larger of the two counts) | ${pct(left)} of ${gb(idle.memTotalMb)} | ≥ 90 % | ${met ? "yes" : "**no**"} |`,
  `| the kernel's charge to each sandbox's memory cgroup | ${mb(idle.cgroupCharge)} |  |  |`,
  "",
  `Other work on the host moves MemAvailable: from before the first create to after the last sandbox was gone it moved ${idle.availDrift >= 0 ? "−" : "+"}${mb(Math.abs(idle.availDrift))}, and the drop is taken against the mean of the two. Processes of one sandbox: ${idle.procs}.`,
  "<!-- density:end -->",
].join("\n");
log(section);
const current = readFileSync(RESULTS, "utf8");
const marked = /<!-- density:start[\s\S]*?<!-- density:end -->/;
writeFileSync(RESULTS, marked.test(current) ? current.replace(marked, section) : `${current.trimEnd()}\n\n${section}\n`);
if (!met) process.exitCode = 1;
