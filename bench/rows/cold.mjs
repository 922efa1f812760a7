// Row 1: cold Sandbox.create() → first spawn("true"), beside bare bwrap with the daemon's own argv.
import { CFG, log, now } from "../lib/env.mjs";
import { stats, ms } from "../lib/stats.mjs";
import { captureSandbox } from "../lib/capture.mjs";
import { rawBwrapTrue, rawSupervisorStart } from "../lib/floors.mjs";
import { waitNoSandboxProcs } from "../lib/proc.mjs";
import { sdkColdStart } from "../lib/sdk.mjs";

/**
 * Against a daemon with its pool off, interleaved per sample: the SDK's create + first spawn,
 * bwrap (same argv) + supervisor to its ready frame, and bare bwrap (same argv) running
 * `/usr/bin/true` and `/.sbx/node -e 0`. Also returns the captured launch the other rows replay.
 */
export async function measureCold(d, uid) {
  const first = await sdkColdStart(d); // warm-up; also captures the exact bwrap argv
  const capture = captureSandbox(d.proc.pid);
  await first.sb.kill();
  await waitNoSandboxProcs();
  for (let i = 0; i < 2; i++) {
    await rawSupervisorStart(capture, uid);
    await rawBwrapTrue(capture, uid);
    const w = await sdkColdStart(d);
    await w.sb.kill();
    await waitNoSandboxProcs();
  }
  const total = [], create = [], firstSpawn = [], sup = [], bt = [], bnode = [];
  for (let i = 0; i < CFG.coldN; i++) {
    const T = [now()];
    const r = await sdkColdStart(d);
    total.push(r.total), create.push(r.create), firstSpawn.push(r.firstSpawn);
    T.push(now());
    await r.sb.kill();
    T.push(now());
    await waitNoSandboxProcs();
    T.push(now());
    sup.push(await rawSupervisorStart(capture, uid));
    T.push(now());
    bt.push(await rawBwrapTrue(capture, uid));
    T.push(now());
    bnode.push(await rawBwrapTrue(capture, uid, ["/.sbx/node", "-e", "0"]));
    if (process.env.BENCH_TRACE) log("cold iteration", T.slice(1).map((t, k) => (t - T[k]).toFixed(1)).join(" "));
  }
  const cold = { total: stats(total), create: stats(create), firstSpawn: stats(firstSpawn), sup: stats(sup), bwrapTrue: stats(bt), bwrapNode: stats(bnode) };
  log(`   sdk ${ms(cold.total)}; bare bwrap true ${ms(cold.bwrapTrue)}; bwrap+supervisor ${ms(cold.sup)}; bwrap node -e 0 ${ms(cold.bwrapNode)}`);
  return { capture, cold };
}
