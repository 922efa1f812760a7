// Rows 1k-1n: the daemon's /etc view (one bind) against the per-entry binds it replaced, with no
// other sandbox on the host and with many live ones (each adds its storage mount to the table
// bwrap reads for every bind).
import { readFileSync } from "node:fs";
import { CFG, Sandbox, daemonModule, log, now, sleep } from "../lib/env.mjs";
import { stats, ms } from "../lib/stats.mjs";
import { withPerEntryEtc } from "../lib/capture.mjs";
import { rawBwrapTrue } from "../lib/floors.mjs";
import { sandboxProcs, waitSandboxProcsAtMost } from "../lib/proc.mjs";
import { sdkColdStart } from "../lib/sdk.mjs";

const mounts = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter(Boolean).length;

/**
 * Interleaved per sample, rotating the order: the SDK's cold create + first `true`, and bare
 * bwrap running `/usr/bin/true` with the daemon's captured argv (the view) and with the same argv
 * given the per-entry binds instead. Once with the host as it is, then with `live` sandboxes of
 * the same daemon left running.
 */
export async function measureEtcView(d, capture, uid, live = CFG.etcLive) {
  const perEntry = withPerEntryEtc(capture, daemonModule.ETC_SHARED, await daemonModule.linkedEtcPaths());
  const binds = (c) => c.args.filter((a) => a === "--ro-bind" || a === "--ro-bind-fd" || a === "--bind-fd" || a === "--ro-bind-data" || a === "--bind" || a === "--symlink").length;
  const round = async (base) => {
    const S = { sdk: [], view: [], perEntry: [] };
    const steps = {
      sdk: async () => {
        const r = await sdkColdStart(d);
        await r.sb.kill();
        await waitSandboxProcsAtMost(base);
        return r.total;
      },
      view: () => rawBwrapTrue(capture, uid),
      perEntry: () => rawBwrapTrue(perEntry, uid),
    };
    const order = Object.keys(steps);
    for (const k of order) await steps[k]();
    for (let i = 0; i < CFG.etcN; i++) for (let j = 0; j < order.length; j++) S[order[(i + j) % order.length]].push(await steps[order[(i + j) % order.length]]());
    return { sdk: stats(S.sdk), view: stats(S.view), perEntry: stats(S.perEntry), mounts: mounts() };
  };
  const idle = await round(sandboxProcs().length);
  log(`   /etc view, no other sandbox (${idle.mounts} mounts): sdk ${ms(idle.sdk)}; bwrap true, view ${ms(idle.view)} vs per-entry ${ms(idle.perEntry)}`);
  const sbs = [];
  const t0 = now();
  try {
    for (let i = 0; i < live; i++) sbs.push(await Sandbox.create(d.opts));
    log(`   ${live} live sandboxes in ${((now() - t0) / 1000).toFixed(1)} s`);
    await sleep(1000);
    const busy = await round(sandboxProcs().length);
    log(`   /etc view, ${live} live (${busy.mounts} mounts): sdk ${ms(busy.sdk)}; bwrap true, view ${ms(busy.view)} vs per-entry ${ms(busy.perEntry)}`);
    return { idle, busy, live, binds: { view: binds(capture), perEntry: binds(perEntry) } };
  } finally {
    for (const sb of sbs) await sb.kill().catch(() => {});
    await waitSandboxProcsAtMost(0, 60_000).catch((err) => log(`   ${err.message}`));
  }
}
