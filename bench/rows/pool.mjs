// Row 1e: create + first spawn("true") from a warm pool (a second daemon, with its default pool).
import { CFG, SUPERVISOR_NAME, Sandbox, daemonModule, log, sleep } from "../lib/env.mjs";
import { ms, stats } from "../lib/stats.mjs";
import { startDaemon } from "../lib/daemon.mjs";
import { sandboxProcs } from "../lib/proc.mjs";
import { sdkColdStart, sdkTrue } from "../lib/sdk.mjs";

/** Row 1j's limits: neither the default memory nor the default CPU quota (the disk stays the default). */
export const OTHER_LIMITS = { memory: "512MiB", cpus: 0.5 };

/**
 * `Sandbox.create()` + first `spawn("true")` against a daemon with its default warm pool. Before
 * each sample the pool is given time to refill: the killed sandbox is gone, `size` supervisors of
 * unowned sandboxes run, nothing else runs in them (the refill's throwaway `true` is done), and
 * 250 ms more pass for the daemon to put the last one in the pool.
 */
export async function measureWarmPool() {
  const dp = await startDaemon({ warmPool: null, quiet: false });
  const size = daemonModule.defaultConfig().warmPool;
  const [lo, hi] = dp.uids;
  const inRange = () => sandboxProcs().filter((p) => p.uid >= lo && p.uid <= hi);
  // `owned`: sandboxes handed out and still running beside the pool (each adds a uid and a supervisor)
  const refilled = async (owned = 0) => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const ps = inRange();
      const uids = new Set(ps.map((p) => p.uid));
      const supervisors = new Set(ps.filter((p) => p.name === SUPERVISOR_NAME).map((p) => p.uid));
      if (uids.size === size + owned && supervisors.size === size + owned && ps.every((p) => p.name === SUPERVISOR_NAME || p.name === "bwrap")) break;
      if (Date.now() > deadline) throw new Error(`the warm pool did not refill to ${size} (beside ${owned} owned) in 15 s: ${JSON.stringify(ps)}`);
      await sleep(5);
    }
    await sleep(250);
  };
  const countStarts = () => {
    const lines = dp.logs().split("\n").filter((l) => / info sandbox \S+ started/.test(l));
    return { starts: lines.length, fromPool: lines.filter((l) => l.includes("from the warm pool")).length };
  };
  try {
    log(`   daemon pid ${dp.proc.pid} (warm pool ${size}, the default)`);
    for (let i = 0; i < 3; i++) {
      await refilled();
      const w = await sdkColdStart(dp);
      await w.sb.kill();
    }
    const before = countStarts();
    const total = [], create = [], firstSpawn = [], other = [], fresh = [];
    // interleaved: default limits, then OTHER_LIMITS (row 1j), which the pool serves by setting the cgroup at claim
    for (let i = 0; i < CFG.warmN; i++) {
      await refilled();
      const r = await sdkColdStart(dp);
      total.push(r.total), create.push(r.create), firstSpawn.push(r.firstSpawn);
      await r.sb.kill();
      await refilled();
      const o = await sdkColdStart(dp, OTHER_LIMITS);
      other.push(o.total);
      await o.sb.kill();
      // 1r: a process's first create, which has no connection opened ahead (client spare.ts keys
      // them by URL, and the daemon ignores the query this one differs by)
      await refilled();
      const f = await sdkColdStart({ opts: { ...dp.opts, url: `${dp.url}/?first=${i}` } });
      fresh.push(f.total);
      await f.sb.kill();
    }
    await sleep(100); // the last create's log line
    const after = countStarts();
    // diagnostic: the first spawn once the refill behind the create has finished
    const settled = [];
    for (let i = 0; i < Math.ceil(CFG.warmN / 2); i++) {
      await refilled();
      const sb = await Sandbox.create(dp.opts);
      await refilled(1);
      settled.push(await sdkTrue(sb, "piped"));
      await sb.kill();
    }
    const out = {
      size, uids: dp.uids, total: stats(total), other: stats(other), fresh: stats(fresh), create: stats(create), firstSpawn: stats(firstSpawn), settled: stats(settled),
      starts: after.starts - before.starts, fromPool: after.fromPool - before.fromPool,
    };
    log(`   sdk ${ms(out.total)} (create ${ms(out.create)}, first spawn ${ms(out.firstSpawn)}); other limits ${ms(out.other)}; first create of a process ${ms(out.fresh)}; ${out.fromPool} of ${out.starts} creates taken from the pool`);
    return out;
  } finally {
    await dp.stop();
  }
}
