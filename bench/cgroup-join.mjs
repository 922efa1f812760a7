// The cgroup join on the start path (issue 11 item 3): sbx-launch joining a fresh sandbox-style
// cgroup (memory, cpu, cpuacct, pids on v1; one dir on v2) and exec'ing /bin/true, against the
// same launch without a cgroup, interleaved, each sample after 200 ms idle (the first move after
// a pause is what waits for an RCU grace period unless favordynmods is on). Reports the host's
// favordynmods state: on a 6.18+ kernel the option cannot be turned off again before a reboot,
// so a run shows one state only. Where a cgroup2 mount exists beside a v1 host's controllers, it
// also times --cgroup-dir (born in the cgroup, the v2 path without favordynmods) there.
// Writes its section of bench/RESULTS.md.
// Run: node bench/cgroup-join.mjs  (JOIN_N=30 samples each by default)
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { BENCH, ROOT, daemonModule, log, now, sleep } from "./lib/env.mjs";
import { ms, ratio, stats } from "./lib/stats.mjs";

const N = Number(process.env.JOIN_N ?? 30);
const LAUNCH = join(ROOT, "packages/daemon/dist/sbx-launch");
const RESULTS = join(BENCH, "RESULTS.md");
const V2 = existsSync("/sys/fs/cgroup/cgroup.controllers");
const base = `sbx-bench-join-${process.pid}`;
const dirsOf = (n) => (V2 ? [`/sys/fs/cgroup/${base}/${n}`] : ["memory", "cpu", "cpuacct", "pids"].map((c) => `/sys/fs/cgroup/${c}/${base}/${n}`));

function run(args) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const p = spawn(LAUNCH, args, { stdio: "ignore" });
    p.once("error", reject);
    p.once("exit", (code) => (code === 0 ? resolve(now() - t0) : reject(new Error(`sbx-launch ${args.join(" ")} exited ${code}`))));
  });
}

const loadStart = loadavg()[0].toFixed(2);
const state = daemonModule.dynmodsState();
log(`favordynmods: ${state.detail}`);
// Born in the cgroup (--cgroup-dir, the v2 path without favordynmods): any cgroup2 mount takes it, a hybrid host's unified one too.
const unified = daemonModule.findCgroup2Mount(readFileSync("/proc/self/mountinfo", "utf8"));
const bornBase = unified && join(unified.mountPoint, base);
const joined = [];
const born = [];
const plain = [];
for (let i = 0; i < N; i++) {
  const dirs = dirsOf(i);
  for (const d of dirs) mkdirSync(d, { recursive: true });
  await sleep(200);
  joined.push(await run([...dirs.flatMap((d) => ["--cgroup-procs", join(d, "cgroup.procs")]), "--nofile", "1024", "--", "/bin/true"]));
  for (const d of dirs) rmdirSync(d);
  if (bornBase && bornBase !== dirs[0].replace(/\/\d+$/, "")) {
    mkdirSync(join(bornBase, String(i)), { recursive: true });
    await sleep(200);
    born.push(await run(["--cgroup-dir", join(bornBase, String(i)), "--nofile", "1024", "--", "/bin/true"]));
    rmdirSync(join(bornBase, String(i)));
  }
  await sleep(200);
  plain.push(await run(["--nofile", "1024", "--", "/bin/true"]));
}
for (const d of dirsOf("").map((d) => d.replace(/\/$/, ""))) rmdirSync(d);
if (born.length) rmdirSync(bornBase);
const j = stats(joined);
const b = stats(born);
const p = stats(plain);
log(`joined ${ms(j)}; born in ${ms(b)}; plain ${ms(p)}`);
const section = [
  `<!-- cgroup-join:start (bench/cgroup-join.mjs, ${new Date().toISOString()}; ${cpus().length} cores; load ${loadStart} → ${loadavg()[0].toFixed(2)}) -->`,
  "## Joining the cgroup",
  "",
  `sbx-launch joining a fresh cgroup (cgroup v${V2 ? 2 : 1}: ${V2 ? "one directory" : "memory, cpu, cpuacct and pids"}) then exec'ing \`/bin/true\`, against the same launch joining none, interleaved, each sample after 200 ms idle. Host: ${state.detail}.`,
  "",
  "| launch → exit | time | floor (no cgroup, same run) | difference | ratio |",
  "|---|---|---|---|---|",
  `| sbx-launch --cgroup-procs … -- /bin/true (joins: moves itself in) | ${ms(j)} | ${ms(p)} | ${(j.median - p.median).toFixed(2)} ms | ${ratio(j.median, p.median)} |`,
  ...(born.length ? [`| sbx-launch --cgroup-dir ${unified.mountPoint}/… -- /bin/true (born in it: clone3, then waits) | ${ms(b)} | ${ms(p)} | ${(b.median - p.median).toFixed(2)} ms | ${ratio(b.median, p.median)} |`] : []),
  "",
  "<!-- cgroup-join:end -->",
].join("\n");
const current = readFileSync(RESULTS, "utf8");
const marked = /<!-- cgroup-join:start[\s\S]*?<!-- cgroup-join:end -->/;
writeFileSync(RESULTS, marked.test(current) ? current.replace(marked, section) : `${current.trimEnd()}\n\n${section}\n`);
