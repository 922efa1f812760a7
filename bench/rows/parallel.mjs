// Row 1p: 20 creates at once, beside 20 bare bwrap launches (same argv) at once.
import { CFG, log, now } from "../lib/env.mjs";
import { stats, ms } from "../lib/stats.mjs";
import { rawBwrapParallel } from "../lib/floors.mjs";
import { waitNoSandboxProcs } from "../lib/proc.mjs";
import { sdkColdStart } from "../lib/sdk.mjs";

/** `CFG.parWidth` cold create + first spawn("true") at once: wall time until all are created / all have run `true`. */
async function sdkBatch(d) {
  const t0 = now();
  // all started in this tick: each one's create time is measured from (within microseconds of) t0
  const rs = await Promise.all(Array.from({ length: CFG.parWidth }, () => sdkColdStart(d)));
  const total = now() - t0;
  await Promise.all(rs.map((r) => r.sb.kill()));
  await waitNoSandboxProcs(null, 30_000);
  return { total, create: Math.max(...rs.map((r) => r.create)) };
}

/** Batches of the two interleaved, the daemon's pool off; `uids` are the floors' host uids (one per launch). */
export async function measureParallel(d, capture, uids) {
  const width = uids.slice(0, CFG.parWidth);
  await sdkBatch(d);
  await rawBwrapParallel(capture, width);
  const total = [], create = [], floor = [];
  for (let i = 0; i < CFG.parN; i++) {
    const r = await sdkBatch(d);
    total.push(r.total), create.push(r.create);
    floor.push(await rawBwrapParallel(capture, width));
  }
  const par = { width: CFG.parWidth, total: stats(total), create: stats(create), floor: stats(floor) };
  log(`   ${par.width} at once: sdk ${ms(par.total)} (created ${ms(par.create)}); bare bwrap ${ms(par.floor)}`);
  return par;
}
