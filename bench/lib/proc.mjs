// Reading /proc: the processes of this bench's sandboxes and floors, their memory, the host's.
import { readdirSync, readFileSync } from "node:fs";
import { MiB, gc, sleep } from "./env.mjs";

export function procStatus(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const num = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? NaN);
    const state = /^State:\s+(\S)/m.exec(s)?.[1] ?? "?";
    return { pid: Number(pid), uid: num("Uid"), ppid: num("PPid"), rssKb: num("VmRSS") || 0, name: /^Name:\s+(\S+)/m.exec(s)?.[1] ?? "?", state };
  } catch {
    return null;
  }
}

export function pssKb(pid) {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

export const rssMb = (pid) => (procStatus(pid)?.rssKb ?? 0) / 1024;
export const pssMb = (pid) => pssKb(pid) / 1024;
/** /proc/meminfo in MB: MemAvailable, and `kernel`, the unreclaimable kernel memory (slab, stacks, page tables, per-cpu). */
export function meminfoMb() {
  const text = readFileSync("/proc/meminfo", "utf8");
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  return { avail: kb("MemAvailable") / 1024, kernel: (kb("SUnreclaim") + kb("KernelStack") + kb("PageTables") + kb("Percpu")) / 1024 };
}

/**
 * The host uid ranges this bench's daemons claimed (from their daemon.json) and who launches
 * processes in them: the daemon, or this process for the floors. Host uids are claimed per
 * daemon, but daemons built before the claims existed may still run sandboxes in the same
 * numbers, so a process counts only if no other sbx daemon launched its sandbox.
 */
const ranges = [];
export function watchUids(lo, hi, launcherPid) {
  const r = { lo, hi, launcherPid };
  ranges.push(r);
  return () => ranges.splice(ranges.indexOf(r), 1);
}
const inRanges = (uid) => ranges.some((r) => uid >= r.lo && uid <= r.hi);
function isOtherDaemon(pid) {
  if (pid === process.pid || ranges.some((r) => r.launcherPid === pid)) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.includes("daemon") && argv.some((a) => /(^|\/)(sbx|cli\.js)$/.test(a));
  } catch {
    return false;
  }
}

/**
 * Every live process of this bench's sandboxes and floors (optionally of one host uid). Zombies
 * are left out: a killed sandbox's bwrap may wait a while for its reaper; it holds no memory.
 */
export function sandboxProcs(filterUid = null) {
  const all = new Map();
  for (const e of readdirSync("/proc")) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    const st = procStatus(e);
    if (st) all.set(st.pid, st);
  }
  const out = [];
  for (const st of all.values()) {
    if (st.state === "Z" || !inRanges(st.uid) || (filterUid !== null && st.uid !== filterUid)) continue;
    // the first ancestor outside the sandbox uids is what launched this sandbox
    let up = all.get(st.ppid);
    while (up && inRanges(up.uid)) up = all.get(up.ppid);
    if (!up || !isOtherDaemon(up.pid)) out.push(st);
  }
  return out;
}

export async function waitNoSandboxProcs(filterUid = null, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (sandboxProcs(filterUid).length > 0) {
    if (Date.now() > deadline) throw new Error(`sandbox processes still alive after ${timeoutMs} ms: ${JSON.stringify(sandboxProcs(filterUid))}`);
    await sleep(2);
  }
}

/** Until no more than `n` sandbox processes are left (the live ones a row keeps): a killed sandbox is gone. */
export async function waitSandboxProcsAtMost(n, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (sandboxProcs().length > n) {
    if (Date.now() > deadline) throw new Error(`sandbox processes still above ${n} after ${timeoutMs} ms`);
    await sleep(2);
  }
}

/** RSS and PSS of each sandbox's processes, grouped by host uid (one uid per sandbox). */
export function perSandboxMemory() {
  const byUid = new Map();
  for (const p of sandboxProcs()) {
    const e = byUid.get(p.uid) ?? { rssKb: 0, pssKb: 0, procs: [] };
    const pss = pssKb(p.pid);
    e.rssKb += p.rssKb;
    e.pssKb += pss;
    e.procs.push(`${p.name} ${(p.rssKb / 1024).toFixed(2)} / ${(pss / 1024).toFixed(2)}`);
    byUid.set(p.uid, e);
  }
  return [...byUid.values()];
}

/** Peak RSS of this process and of the daemon while `fn` runs, relative to just before it. */
export async function withRssPeak(daemonPid, fn) {
  gc();
  await sleep(50);
  const base = { client: process.memoryUsage().rss / MiB, daemon: rssMb(daemonPid) };
  const peak = { ...base };
  const timer = setInterval(() => {
    peak.client = Math.max(peak.client, process.memoryUsage().rss / MiB);
    peak.daemon = Math.max(peak.daemon, rssMb(daemonPid));
  }, 20);
  try {
    const result = await fn();
    return { result, clientGrowth: peak.client - base.client, daemonGrowth: peak.daemon - base.daemon };
  } finally {
    clearInterval(timer);
  }
}
