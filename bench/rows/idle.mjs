// Rows 5: what an idle sandbox costs in memory (its processes, the daemon's share, the host's),
// beside bwrap (same argv) holding the supervisor alone, and holding only `sleep`.
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { CFG, MiB, Sandbox, gc, log, now, sleep } from "../lib/env.mjs";
import { mb, stats } from "../lib/stats.mjs";
import { captureSandbox, withCommand } from "../lib/capture.mjs";
import { cgroupCharges } from "../lib/cgroups.mjs";
import { spawnRawBwrap } from "../lib/floors.mjs";
import { meminfoMb, perSandboxMemory, pssMb, rssMb, waitNoSandboxProcs } from "../lib/proc.mjs";
import { sdkTrue } from "../lib/sdk.mjs";

/** meminfoMb(), each field the median of five reads 100 ms apart (other work on the host moves them). */
async function meminfo() {
  const xs = [];
  for (let k = 0; k < 5; k++) {
    if (k) await sleep(100);
    xs.push(meminfoMb());
  }
  return { avail: stats(xs.map((x) => x.avail)).median, kernel: stats(xs.map((x) => x.kernel)).median };
}

/** `CFG.idleN` sandboxes from the daemon `d`, measured fresh and after one `true` each; `uids` for the floors. */
export async function measureIdle(d, uids) {
  const n = CFG.idleN;
  const pid = d.proc.pid;
  const daemonMem = () => ({ rss: rssMb(pid), pss: pssMb(pid) });
  gc();
  await sleep(1000);
  const daemonBefore = daemonMem();
  const memBefore = await meminfo();
  const sbs = [];
  const t0 = now();
  for (let i = 0; i < n; i++) sbs.push(await Sandbox.create(d.opts));
  const createSeconds = (now() - t0) / 1000;
  await sleep(2000);
  const fresh = perSandboxMemory();
  const daemonFresh = daemonMem();
  const memFresh = await meminfo();
  const charged = cgroupCharges(d.cgroupName);
  for (const sb of sbs) await sdkTrue(sb, "piped");
  await sleep(1500);
  const used = perSandboxMemory();
  const daemonUsed = daemonMem();
  const memUsed = await meminfo();
  if (fresh.length !== n || used.length !== n) throw new Error(`expected ${n} sandboxes, saw ${fresh.length} / ${used.length}`);
  if (charged.length !== n) throw new Error(`expected ${n} sandbox memory cgroups under ${d.cgroupName}, saw ${charged.length}`);
  const capture = captureSandbox(pid);
  for (const sb of sbs) await sb.kill();
  await waitNoSandboxProcs(null, 60_000);
  // the daemon unmounts and deletes each sandbox's storage after its processes are gone
  const deadline = Date.now() + 60_000;
  while (readFileSync("/proc/self/mountinfo", "utf8").includes(` ${d.stateDir}/`) && Date.now() < deadline) await sleep(50);
  await sleep(1500);
  const memEnd = await meminfo();
  // floor: the same bwrap argv and supervisor, started directly, left idle
  const floorUids = uids.slice(0, CFG.floorIdleN);
  const floors = [];
  for (const uid of floorUids) {
    const c = spawnRawBwrap(capture, uid);
    await new Promise((r) => c.stdout.once("data", r));
    floors.push(c);
  }
  await sleep(1500);
  const floorMem = perSandboxMemory();
  for (const c of floors) c.kill("SIGKILL");
  for (const uid of floorUids) await waitNoSandboxProcs(uid);
  // and bwrap (same argv) holding only `sleep`
  const sleepers = floorUids.map((uid) => spawnRawBwrap(withCommand(capture, ["/usr/bin/sleep", "60"]), uid));
  await sleep(1000);
  const sleepMem = perSandboxMemory();
  for (const c of sleepers) c.kill("SIGKILL");
  for (const uid of floorUids) await waitNoSandboxProcs(uid);
  const base = (k) => (memBefore[k] + memEnd[k]) / 2;
  const avg = (list, k) => list.reduce((a, e) => a + e[k], 0) / list.length / 1024;
  const idle = {
    n,
    freshRss: avg(fresh, "rssKb"), freshPss: avg(fresh, "pssKb"),
    usedRss: avg(used, "rssKb"), usedPss: avg(used, "pssKb"),
    floorRss: avg(floorMem, "rssKb"), floorPss: avg(floorMem, "pssKb"), floorN: floorMem.length,
    sleepRss: avg(sleepMem, "rssKb"), sleepPss: avg(sleepMem, "pssKb"),
    daemonGrowth: daemonFresh.rss - daemonBefore.rss, daemonGrowthUsed: daemonUsed.rss - daemonBefore.rss,
    daemonPssGrowth: daemonFresh.pss - daemonBefore.pss, daemonPssGrowthUsed: daemonUsed.pss - daemonBefore.pss,
    // against the mean of before and after (all gone): a steady drift of the host's other work cancels out
    availDrop: base("avail") - memFresh.avail, availDropUsed: base("avail") - memUsed.avail, availDrift: memBefore.avail - memEnd.avail,
    kernelGrowth: memFresh.kernel - base("kernel"), kernelGrowthUsed: memUsed.kernel - base("kernel"), kernelDrift: memEnd.kernel - memBefore.kernel,
    cgroupCharge: charged.reduce((a, b) => a + b, 0) / charged.length / MiB,
    createSeconds,
    memTotalMb: totalmem() / MiB,
    procs: used[0].procs.join(", "),
  };
  // the target's figure: the sandbox's own processes plus its share of the daemon's growth
  idle.treePss = idle.usedPss + Math.max(0, idle.daemonPssGrowthUsed) / n;
  idle.availPerSandbox = idle.availDropUsed / n;
  idle.kernelPerSandbox = idle.kernelGrowthUsed / n;
  // what each takes from the host, two ways: MemAvailable (everything, noisy) and PSS + unreclaimable kernel memory; the larger counts
  idle.hostCost = Math.max(idle.availPerSandbox, idle.treePss + Math.max(0, idle.kernelPerSandbox));
  log(`   per sandbox PSS ${mb(idle.usedPss)} + daemon ${mb(idle.daemonPssGrowthUsed / n)} = ${mb(idle.treePss)} (RSS ${mb(idle.usedRss)}); floor ${mb(idle.floorPss)} PSS; MemAvailable drop ${mb(idle.availPerSandbox)}, kernel ${mb(idle.kernelPerSandbox)} per sandbox; cgroup charge ${mb(idle.cgroupCharge)}`);
  return idle;
}
