// Rows 6: the daemon's launch replayed with its hardening on and off (and each half alone).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CFG, MiB, daemonModule, log, now } from "../lib/env.mjs";
import { stats, ms } from "../lib/stats.mjs";
import { allowAllProgram, withSeccompProgram } from "../lib/capture.mjs";
import { hardenedPrefix, makeBenchCgroup, removeBenchCgroup, removeBenchCgroupBases } from "../lib/cgroups.mjs";
import { rawBwrapTrue, rawSupervisorStart } from "../lib/floors.mjs";
import { startSupervisor } from "../lib/supervisor.mjs";

/** Runs inside a sandbox (or on the host): `child_process.spawn('/bin/true')` round trips, as JSON. */
const RTT_SCRIPT = `const { spawn } = require("child_process");
const one = () => new Promise((resolve, reject) => {
  const t0 = performance.now();
  const c = spawn("/bin/true", [], { stdio: "pipe" });
  c.once("error", reject);
  c.once("exit", () => resolve(performance.now() - t0));
});
(async () => {
  const n = Number(process.argv[1]);
  for (let i = 0; i < 20; i++) await one();
  const xs = [];
  for (let i = 0; i < n; i++) xs.push(await one());
  process.stdout.write(JSON.stringify(xs));
})();`;

/** get_mempolicy(NULL, NULL, 0, NULL, 0): 0 for anyone, EPERM under the daemon's filter. */
const MEMPOLICY_NR = { x64: 239, arm64: 236 }[daemonModule.hostArch()];
const PROBE = [
  "-c",
  "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -s '\\t\\n' '  '; echo \"nofile $(ulimit -n) oom $(cat /proc/1/oom_score_adj)\"; " +
    `python3 -c 'import ctypes; l = ctypes.CDLL(None, use_errno=True); r = l.syscall(${MEMPOLICY_NR}, 0, 0, 0, 0, 0); print("get_mempolicy", r, ctypes.get_errno())'`,
];

/**
 * The captured launch replayed four ways, interleaved: hardening off (an allow-everything
 * seccomp program on the supervisor's fd, no cgroups, bwrap started as the host uid through
 * node's uid option), the daemon's seccomp program only, the root-mode wrapper only (fresh
 * cgroups with the daemon's limits joined by the daemon's own sbx-launch, with its
 * oom_score_adj, rlimits and uid) and both (= what the daemon runs).
 */
export async function measureHardening(capture, uid) {
  const h = capture.hardening;
  if (!h.cgroupValues) throw new Error("the captured sandbox sits in no cgroup of its own: is the daemon in root mode with cgroups?");
  const plain = withSeccompProgram(capture, allowAllProgram());
  const variants = {
    off: { cap: plain, cg: false },
    seccomp: { cap: capture, cg: false },
    wrap: { cap: plain, cg: true },
    on: { cap: capture, cg: true },
  };
  const order = Object.keys(variants);
  const cgSetup = [], cgRemove = [];
  /** CFS throttling seen in each sample's cgroup: [samples throttled, samples, total throttled ms]. */
  const throttled = {};
  const throttleCheck = (k, phase) => (cg) => {
    const cpu = cg.made.find((dir) => dir.includes("/cpu/") || dir.includes("/cpu,"));
    const stat = readFileSync(join(cpu, "cpu.stat"), "utf8");
    const n = Number(/^nr_throttled (\d+)/m.exec(stat)?.[1] ?? 0);
    const ns = Number(/^throttled_time (\d+)/m.exec(stat)?.[1] ?? 0);
    const e = (throttled[`${k}.${phase}`] ??= [0, 0, 0]);
    e[0] += n > 0 ? 1 : 0;
    e[1] += 1;
    e[2] += ns / 1e6;
  };
  let cgN = 0;
  const run = async (v, fn, check = null) => {
    if (!v.cg) return fn(v.cap);
    const t0 = now();
    const cg = makeBenchCgroup(cgN++, h.cgroupValues);
    cgSetup.push(now() - t0);
    try {
      const r = await fn({ ...v.cap, prefix: hardenedPrefix(capture, uid, cg.procsFiles) });
      check?.(cg);
      return r;
    } finally {
      const t1 = now();
      await removeBenchCgroup(cg);
      cgRemove.push(now() - t1);
    }
  };
  /** A command run by the replayed supervisor, as the daemon's spawns are: its stdout. */
  const inside = async (cap, cmd, args) => {
    const sup = await startSupervisor(cap, uid);
    try {
      const { stdout, status } = await sup.run(cmd, args);
      if (status.code !== 0) throw new Error(`${cmd} exited ${JSON.stringify(status)} in the replayed supervisor: ${stdout}`);
      return stdout;
    } finally {
      await sup.close();
    }
  };
  try {
    // each variant really is what it claims to be
    const seen = {};
    for (const k of order) {
      let charged = null;
      const out = await run(variants[k], (c) => inside(c, "/bin/sh", PROBE), (cg) => {
        const mem = cg.made.find((dir) => dir.includes("/memory/") || dir.includes("/memory,"));
        charged = Number(readFileSync(join(mem, "memory.max_usage_in_bytes"), "utf8"));
      });
      seen[k] = out.trim().replace(/\s+/g, " ") + (charged !== null ? `; cgroup peak ${(charged / MiB).toFixed(1)} MiB` : "");
      const filtered = /get_mempolicy -1 1\b/.test(out);
      if (filtered !== (k === "seccomp" || k === "on") || !/Seccomp: 2/.test(out)) throw new Error(`hardening variant ${k}: unexpected seccomp state: ${out}`);
      if (variants[k].cg && !(charged > 0)) throw new Error(`hardening variant ${k}: nothing was charged to its cgroup`);
    }
    log(`   variants: ${JSON.stringify(seen)}`);
    const S = Object.fromEntries(order.map((k) => [k, { sup: [], tru: [], rtt: [] }]));
    const rotated = (i) => order.map((_, j) => order[(i + j) % order.length]);
    // a bare `/usr/bin/true` gets no seccomp (only the supervisor installs it): timed off and on only
    const truth = (k) => k === "off" || k === "on";
    for (const k of order) {
      await run(variants[k], (c) => rawSupervisorStart(c, uid));
      if (truth(k)) await run(variants[k], (c) => rawBwrapTrue(c, uid));
    }
    for (let i = 0; i < CFG.hardN; i++) {
      for (const k of rotated(i)) {
        S[k].sup.push(await run(variants[k], (c) => rawSupervisorStart(c, uid), throttleCheck(k, "sup")));
        if (truth(k)) S[k].tru.push(await run(variants[k], (c) => rawBwrapTrue(c, uid), throttleCheck(k, "tru")));
      }
    }
    const host = [];
    for (let i = 0; i < CFG.hardRttReps; i++) {
      for (const k of rotated(i)) S[k].rtt.push(...JSON.parse(await run(variants[k], (c) => inside(c, "/.sbx/node", ["-e", RTT_SCRIPT, String(CFG.hardRttN)]))));
      host.push(...JSON.parse(execFileSync(process.execPath, ["-e", RTT_SCRIPT, String(CFG.hardRttN)], { encoding: "utf8" })));
    }
    const out = { seen, throttled, cgSetup: stats(cgSetup), cgRemove: stats(cgRemove), host: { rtt: stats(host) } };
    for (const k of order) out[k] = { sup: stats(S[k].sup), tru: stats(S[k].tru), rtt: stats(S[k].rtt) };
    log(`   start ${ms(out.on.sup)} vs ${ms(out.off.sup)}; bwrap true ${ms(out.on.tru)} vs ${ms(out.off.tru)}; spawn rtt ${ms(out.on.rtt)} vs ${ms(out.off.rtt)} (host ${ms(out.host.rtt)})`);
    return out;
  } finally {
    removeBenchCgroupBases();
  }
}
