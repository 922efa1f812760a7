#!/usr/bin/env node
// Cold create, this tree's daemon against another built tree's, interleaved in one run:
//   BENCH_BASE=/path/to/other/checkout node bench/ab.mjs   (after `pnpm build` in both)
// Two daemons with their pools off; per sample, in rotating order, each one's `Sandbox.create()` +
// first `spawn("true")` and bare bwrap running `/usr/bin/true` with that daemon's own captured
// argv (its floor). Once with no other sandbox, then with AB_LIVE (default 200; QUICK 20) live
// sandboxes, half on each daemon (each adds its storage mount to the table bwrap reads for every
// bind). Prints medians and the ratios; writes nothing.
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { CFG, QUICK, Sandbox, log } from "./lib/env.mjs";
import { captureSandbox } from "./lib/capture.mjs";
import { floorUids, startDaemon } from "./lib/daemon.mjs";
import { rawBwrapTrue } from "./lib/floors.mjs";
import { sandboxProcs, waitSandboxProcsAtMost } from "./lib/proc.mjs";
import { sdkColdStart } from "./lib/sdk.mjs";
import { stats, ms } from "./lib/stats.mjs";

if (process.getuid?.() !== 0) throw new Error("run as root: sandboxes and the floors run as their own host uids");
if (!process.env.BENCH_BASE) throw new Error("BENCH_BASE=/path/to/other/checkout (built) names the tree to compare with");
const live = Number(process.env.AB_LIVE ?? (QUICK ? 20 : 200));
const load0 = loadavg()[0].toFixed(2);
const mounts = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter(Boolean).length;

const daemons = {
  this: await startDaemon({ warmPool: 0 }),
  base: await startDaemon({ warmPool: 0, cli: join(resolve(process.env.BENCH_BASE), "packages/daemon/dist/cli.js") }),
};
const names = Object.keys(daemons);
const held = [];
const out = {};
try {
  const floors = {};
  for (const k of names) {
    const d = daemons[k];
    const first = await sdkColdStart(d);
    floors[k] = { capture: captureSandbox(d.proc.pid), uid: floorUids(d)[0] };
    await first.sb.kill();
    await waitSandboxProcsAtMost(0);
    log(`${k}: bwrap argv of ${floors[k].capture.argc} words${floors[k].capture.omitted.length ? `, floor omits ${floors[k].capture.omitted.join("; ")}` : ""}`);
  }
  const round = async (label) => {
    const base = sandboxProcs().length;
    const steps = {};
    for (const k of names) {
      steps[`sdk.${k}`] = async () => {
        const r = await sdkColdStart(daemons[k]);
        await r.sb.kill();
        await waitSandboxProcsAtMost(base);
        return r.total;
      };
      steps[`floor.${k}`] = () => rawBwrapTrue(floors[k].capture, floors[k].uid);
    }
    const order = Object.keys(steps);
    const S = Object.fromEntries(order.map((k) => [k, []]));
    for (const k of order) await steps[k]();
    for (let i = 0; i < CFG.coldN; i++) for (let j = 0; j < order.length; j++) {
      const k = order[(i + j) % order.length];
      S[k].push(await steps[k]());
    }
    out[label] = { mounts: mounts(), ...Object.fromEntries(order.map((k) => [k, stats(S[k])])) };
    log(`${label} (${out[label].mounts} mounts): ${order.map((k) => `${k} ${ms(out[label][k])}`).join("; ")}`);
  };
  await round("idle");
  for (let i = 0; i < live; i++) held.push(await Sandbox.create(daemons[names[i % 2]].opts));
  await round("busy");
} finally {
  for (const sb of held) await sb.kill().catch(() => {});
  for (const d of Object.values(daemons)) await d.stop();
}
const f = (s) => `${s.median.toFixed(2)} ms (p90 ${s.p90.toFixed(1)}, n=${s.n})`;
console.log(`load ${load0} → ${loadavg()[0].toFixed(2)}; this tree vs BENCH_BASE=${process.env.BENCH_BASE}`);
for (const [label, what] of [["idle", "no other sandbox"], ["busy", `${live} live sandboxes`]]) {
  const r = out[label];
  console.log(`${what} (${r.mounts} mounts):`);
  console.log(`  cold create + first true: this ${f(r["sdk.this"])}, base ${f(r["sdk.base"])}: this/base ${(r["sdk.this"].median / r["sdk.base"].median).toFixed(2)}×`);
  console.log(`  bare bwrap true, each daemon's argv: this ${f(r["floor.this"])}, base ${f(r["floor.base"])}: this/base ${(r["floor.this"].median / r["floor.base"].median).toFixed(2)}×`);
  console.log(`  sdk/floor: this ${(r["sdk.this"].median / r["floor.this"].median).toFixed(2)}×, base ${(r["sdk.base"].median / r["floor.base"].median).toFixed(2)}×`);
}
log(`done (${CFG.coldN} samples per step and round)`);
