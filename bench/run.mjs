#!/usr/bin/env node
// sbx benchmarks: every figure beside its floor, measured in the same run on this machine.
// Usage: node bench/run.mjs   (after `pnpm build`; `pnpm bench` does both, then bench/neighbours.ts)
//        QUICK=1 node bench/run.mjs   (small sizes, few samples: checks the bench works; RESULTS.md is left alone)
//        BENCH_ROOT=/path/to/other/checkout [BENCH_LABEL=text] node bench/run.mjs   (measure another built tree)
//        BENCH_TRACE=1 logs the time of each step of every cold-start iteration
// Writes bench/RESULTS.md (keeping its neighbours section). Needs root (sandboxes run as host
// uids of each daemon's own range), bwrap >= 0.8 (--as-pid-1), cgroups.
// Two daemons: one with its warm pool off (every create is cold) for all rows but 1e, and one with
// the default pool for 1e. Rows 6 replay the daemon's launch with and without its hardening, rows
// 1k-1l with its /etc view and with the per-entry binds the view replaced.
import { rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { BENCH, QUICK, Sandbox, log } from "./lib/env.mjs";
import { FLOOR_DIRS } from "./lib/capture.mjs";
import { floorUids, freePort, startDaemon } from "./lib/daemon.mjs";
import { renderResults, writeResults } from "./lib/document.mjs";
import { machine } from "./lib/machine.mjs";
import { waitNoSandboxProcs } from "./lib/proc.mjs";
import { startWsPeer } from "./lib/ws.mjs";
import { measureCold } from "./rows/cold.mjs";
import { measureEtcView } from "./rows/etc.mjs";
import { measureFiles } from "./rows/files.mjs";
import { measureHardening } from "./rows/hardening.mjs";
import { measureIdle } from "./rows/idle.mjs";
import { measureParallel } from "./rows/parallel.mjs";
import { measureWarmPool } from "./rows/pool.mjs";
import { measureRtt } from "./rows/rtt.mjs";
import { measureMetricsScrape } from "./rows/metrics.mjs";
import { measureStdout } from "./rows/stdout.mjs";

async function main() {
  if (process.getuid?.() !== 0) throw new Error("run as root: sandboxes and the floors run as their own host uids");
  const started = Date.now();
  const m = machine();
  log(`machine: ${JSON.stringify(m)}${QUICK ? " (QUICK)" : ""}`);
  // the daemon for everything but row 1e runs with its warm pool off: every create is cold
  const d = await startDaemon({ warmPool: 0, metricsPort: await freePort() });
  const uids = floorUids(d);
  log(`daemon pid ${d.proc.pid} at ${d.url} (warm pool off; uids ${d.uids.join("..")}, floors from ${uids[0]})`);
  await waitNoSandboxProcs(null, 2000).catch(() => {
    throw new Error(`processes already run as uids ${d.uids.join("..")}: stop whatever runs them first`);
  });
  const peer = await startWsPeer();
  const R = { uids: { main: d.uids } };
  try {
    log("1. cold start (warm pool off)");
    const { capture, cold } = await measureCold(d, uids[0]);
    Object.assign(R, { cold, hardening: capture.hardening, bwrapArgc: capture.argc, omitted: capture.omitted });

    log("1e. create + first spawn from the warm pool");
    R.warm = await measureWarmPool();

    log("1p. creates in parallel");
    R.par = await measureParallel(d, capture, uids);

    log("6. hardening on vs off");
    R.hard = await measureHardening(capture, uids[0]);

    log("1k. the /etc view vs per-entry binds, with no other sandbox and with many");
    R.etc = await measureEtcView(d, capture, uids[0]);

    // rows 2-4 share one sandbox (measureFiles kills it)
    const sb = await Sandbox.create(d.opts);
    log("2. spawn round trip");
    R.rtt = await measureRtt(sb);
    log("2m. spawn round trip while /metrics is scraped");
    R.metrics = await measureMetricsScrape(sb, d.metricsUrl);
    log("3. stdout throughput");
    R.stdout = await measureStdout(d, sb, peer);
    log("4. file upload/download");
    R.files = await measureFiles(d, sb, peer);

    log("5. idle memory");
    R.idle = await measureIdle(d, uids);
  } finally {
    await peer.stop();
    await d.stop();
    rmSync(FLOOR_DIRS, { recursive: true, force: true });
  }
  log("7. egress proxy (bench/egress.mjs)");
  const { measureEgress } = await import(pathToFileURL(join(BENCH, "egress.mjs")).href);
  const egress = await measureEgress();
  R.seconds = (Date.now() - started) / 1000;
  R.loadEnd = loadavg()[0].toFixed(2);
  const md = renderResults(m, R, egress);
  process.stdout.write(md);
  if (QUICK) log(`done in ${R.seconds.toFixed(0)} s (quick run: bench/RESULTS.md left as it was)`);
  else {
    writeResults(md);
    log(`done in ${R.seconds.toFixed(0)} s; wrote bench/RESULTS.md`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
