#!/usr/bin/env node
// Rows 1 and 1e alone (cold create beside bare bwrap, and create from the warm pool), for
// iterating on the create path: `node bench/create.mjs` (QUICK=1 for fewer samples; SKIP_WARM=1
// leaves out 1e-1j and row 2, the warm spawn 1g and 1h are compared with; HARDENING=1 adds row 6,
// the launch with hardening on vs off; ETC=1 adds rows 1k-1n, the /etc view against the per-entry
// binds it replaced, with no other sandbox and with ETC_LIVE (200) live ones; PARALLEL=1 adds
// rows 1p-1q, 20 creates at once beside 20 bare bwrap launches). Prints the medians and the ratios the full bench
// (bench/run.mjs) reports for these rows; writes nothing.
import { loadavg } from "node:os";
import { CFG, Sandbox, log } from "./lib/env.mjs";
import { floorUids, startDaemon } from "./lib/daemon.mjs";
import { waitNoSandboxProcs } from "./lib/proc.mjs";
import { measureCold } from "./rows/cold.mjs";
import { measureHardening } from "./rows/hardening.mjs";
import { measureParallel } from "./rows/parallel.mjs";
import { measureEtcView } from "./rows/etc.mjs";
import { measureWarmPool } from "./rows/pool.mjs";
import { measureRtt } from "./rows/rtt.mjs";

if (process.getuid?.() !== 0) throw new Error("run as root: sandboxes and the floors run as their own host uids");
const load0 = loadavg()[0].toFixed(2);
const d = await startDaemon({ warmPool: 0 });
let cold, hard, rtt, etc, par;
try {
  await waitNoSandboxProcs(null, 2000);
  let capture;
  ({ cold, capture } = await measureCold(d, floorUids(d)[0]));
  // HARDENING=1: also row 6 (the captured launch replayed with the daemon's hardening on and off)
  if (process.env.HARDENING) hard = await measureHardening(capture, floorUids(d)[0]);
  if (process.env.ETC) etc = await measureEtcView(d, capture, floorUids(d)[0]);
  if (process.env.PARALLEL) par = await measureParallel(d, capture, floorUids(d));
  if (!process.env.SKIP_WARM) {
    const sb = await Sandbox.create(d.opts);
    rtt = await measureRtt(sb);
    await sb.kill();
  }
} finally {
  await d.stop();
}
const warm = process.env.SKIP_WARM ? null : await measureWarmPool();
const f = (s) => `${s.median.toFixed(2)} ms (p90 ${s.p90.toFixed(1)}, n=${s.n})`;
const floor = 1.2 * cold.bwrapTrue.median + 10;
console.log(`load ${load0} → ${loadavg()[0].toFixed(2)}`);
console.log(`1  cold create + first true: ${f(cold.total)}; bare bwrap true ${f(cold.bwrapTrue)}: ${(cold.total.median / cold.bwrapTrue.median).toFixed(2)}× (target ≤ ${floor.toFixed(1)} ms: ${cold.total.median <= floor ? "met" : "missed"})`);
console.log(`1a   of which create ${f(cold.create)}, first spawn ${f(cold.firstSpawn)}; bwrap+supervisor ${f(cold.sup)}`);
if (hard) console.log(`6  hardened launch to the ready frame ${f(hard.on.sup)} vs off ${f(hard.off.sup)}: ${(hard.on.sup.median / hard.off.sup.median).toFixed(2)}×; launch wrapper only ${f(hard.wrap.sup)}, seccomp only ${f(hard.seccomp.sup)}`);
if (etc) {
  const r = (x) => (x.perEntry.median / x.view.median).toFixed(2);
  console.log(`1k /etc view (1 bind; ${etc.binds.view} binds in all) vs per-entry binds (${etc.binds.perEntry} in all), bare bwrap true, no other sandbox (${etc.idle.mounts} mounts): ${f(etc.idle.view)} vs ${f(etc.idle.perEntry)}: per-entry/view ${r(etc.idle)}×`);
  console.log(`1l … with ${etc.live} live sandboxes (${etc.busy.mounts} mounts): ${f(etc.busy.view)} vs ${f(etc.busy.perEntry)}: per-entry/view ${r(etc.busy)}×`);
  console.log(`1m cold create + first true, no other sandbox: ${f(etc.idle.sdk)}; with ${etc.live} live: ${f(etc.busy.sdk)}: ${(etc.busy.sdk.median / etc.idle.sdk.median).toFixed(2)}×`);
}
if (par) console.log(`1p ${par.width} cold creates at once, each with its first true: ${f(par.total)} (1q: all created ${f(par.create)}); ${par.width} bare bwrap launches at once ${f(par.floor)}: ${(par.total.median / par.floor.median).toFixed(2)}× (target ≤ 2×: ${par.total.median <= 2 * par.floor.median ? "met" : "missed"})`);
if (warm) console.log(`1e warm create + first true: ${f(warm.total)}; other limits (1j) ${f(warm.other)} (create ${f(warm.create)}, first spawn ${f(warm.firstSpawn)}, settled ${f(warm.settled)}); ${warm.fromPool} of ${warm.starts} from the pool`);
if (warm) console.log(`2  warm spawn round trip ${f(rtt.piped)}: 1e's first spawn is ${(warm.firstSpawn.median / rtt.piped.median).toFixed(2)}× of it, 1h's ${(warm.settled.median / rtt.piped.median).toFixed(2)}×`);
log(`done (${CFG.coldN} cold samples)`);
