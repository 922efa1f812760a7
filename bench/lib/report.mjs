// The table of RESULTS.md: every row with its floor from the same run, its ratio and its target.
import { CFG, MiB } from "./env.mjs";
import { f1, mb, mbs, ms, ok, pct, ratio, sgn } from "./stats.mjs";
import { OTHER_LIMITS } from "../rows/pool.mjs";

const GiBof = (b) => (b >= 1024 * MiB ? `${b / (1024 * MiB)} GiB` : `${b / MiB} MiB`);

function throttleText(t, k, phases) {
  const one = (phase) => {
    const [hit, n, total] = t[`${k}.${phase}`] ?? [0, 0, 0];
    return `${hit} of ${n}${hit ? ` (${f1(total / hit)} ms each)` : ""}`;
  };
  return phases.map(one).join(" / ");
}

/** 1,000 idle sandboxes in 10 % of 24 GiB. */
const PER_SANDBOX_BUDGET = (0.1 * 24 * 1024) / 1000;

/** Idle sandboxes that fit in 10 % of this host's memory (so ≥ 90 % is left) at `perSandboxMb` each. */
export const fitting = (i, perSandboxMb) => Math.floor((0.1 * i.memTotalMb) / perSandboxMb);

/** Rows: [#, metric, sbx, floor, ratio, target, met]. */
export function tableRows(R) {
  const { cold: c, warm: w, par: p, rtt: t, metrics: mx, stdout: s, files: fl, idle: i, hard: h, etc: e } = R;
  const coldBound = 1.2 * c.bwrapTrue.median + 10;
  const onOff = (k, label) => `${label}: ${ms(h.seccomp[k])} seccomp only; ${ms(h.wrap[k])} cgroups + rlimits + uid (sbx-launch) only`;
  // a MemAvailable drop within the host's noise gives no capacity figure of its own
  const fitAvail = i.availPerSandbox > 0 ? fitting(i, i.availPerSandbox).toLocaleString("en") : "— (drop within noise)";
  const fitKernel = fitting(i, i.treePss + Math.max(0, i.kernelPerSandbox)).toLocaleString("en");
  const hostGiB = (i.memTotalMb / 1024).toFixed(1);
  const at1000 = (1000 * i.hostCost) / 1024;
  return [
    ["1", "`Sandbox.create()` → first `spawn(\"true\")` finished, cold (daemon with `warmPool: 0`)", ms(c.total), `bare bwrap, same argv, \`/usr/bin/true\`: ${ms(c.bwrapTrue)}`, ratio(c.total.median, c.bwrapTrue.median), `≤ 1.2× floor + 10 ms = ${f1(coldBound)} ms`, ok(c.total.median <= coldBound)],
    ["1a", "… of which `Sandbox.create()` (connect + create; from a process's second create on, the connection was opened ahead)", ms(c.create), `bwrap (same argv) + supervisor to its ready frame: ${ms(c.sup)}`, ratio(c.create.median, c.sup.median), "", ""],
    ["1b", "… of which the first `spawn(\"true\")`", ms(c.firstSpawn), `warm spawn (row 2): ${ms(t.piped)}`, ratio(c.firstSpawn.median, t.piped.median), "", ""],
    ["1c", "bwrap, same argv, supervisor until its ready frame (no cgroups, seccomp, rlimits, sbx-launch)", "", ms(c.sup), `${ratio(c.sup.median, c.bwrapTrue.median)} of 1's floor`, "", ""],
    ["1d", "bare bwrap, same argv, `node -e 0` (the daemon's node binary)", "", ms(c.bwrapNode), "", "(anchor 42.4 ms)", ""],
    ["1i", "… `Sandbox.create()` beyond the hardened launch: median of 1a minus median of 6 (on)", `${f1(c.create.median - h.on.sup.median)} ms`, `(6 on: ${f1(h.on.sup.median)} ms)`, "", "", ""],
    ["1e", `same from a warm pool (create + first spawn; a second daemon, default pool of ${w.size}; ${w.fromPool} of ${w.starts} creates taken from it)`, ms(w.total), `cold (row 1): ${ms(c.total)}`, ratio(w.total.median, c.total.median), "≤ 5 ms", ok(w.total.median <= 5 && w.fromPool === w.starts)],
    ["1f", "… of which `Sandbox.create()` (the call; its connection was opened ahead, see 1r)", ms(w.create), "", "", "", ""],
    ["1g", "… of which the first `spawn(\"true\")`", ms(w.firstSpawn), `warm spawn (row 2): ${ms(t.piped)}`, ratio(w.firstSpawn.median, t.piped.median), "", ""],
    ["1h", "… diagnostic: that first spawn when started after the pool's refill has finished", ms(w.settled), `warm spawn (row 2): ${ms(t.piped)}`, ratio(w.settled.median, t.piped.median), "", ""],
    ["1j", `same from the warm pool with other limits (\`memory: "${OTHER_LIMITS.memory}", cpus: ${OTHER_LIMITS.cpus}\`: the cgroup is set at claim), interleaved with 1e`, ms(w.other), `default limits (1e): ${ms(w.total)}`, ratio(w.other.median, w.total.median), "≤ 5 ms", ok(w.other.median <= 5 && w.fromPool === w.starts)],
    ["1r", "… diagnostic: 1e as a process's first create, its connection not opened ahead (client `spare.ts`), interleaved with 1e", ms(w.fresh), `1e: ${ms(w.total)}`, ratio(w.fresh.median, w.total.median), "", ""],
    ["1p", `${p.width} cold creates at once, each with its first \`spawn("true")\`: wall time until all are done`, ms(p.total), `${p.width} bare bwrap launches (same argv, \`/usr/bin/true\`) at once: ${ms(p.floor)}`, ratio(p.total.median, p.floor.median), "≤ 2×", ok(p.total.median <= 2 * p.floor.median)],
    ["1q", "… until the last `Sandbox.create()` returned", ms(p.create), "", ratio(p.create.median, p.floor.median), "", ""],
    ["1k", `\`/etc\` as the daemon's one view (${e.binds.view} binds in all) vs the per-entry binds it replaced (${e.binds.perEntry}): bare bwrap, same argv otherwise, \`/usr/bin/true\`, no other sandbox (${e.idle.mounts} mounts)`, ms(e.idle.view), `per-entry \`/etc\` binds (the argv before the view): ${ms(e.idle.perEntry)}`, ratio(e.idle.view.median, e.idle.perEntry.median), "", ""],
    ["1l", `… with ${e.live} live sandboxes (${e.busy.mounts} mounts: bwrap reads them all for each bind)`, ms(e.busy.view), `per-entry: ${ms(e.busy.perEntry)}`, ratio(e.busy.view.median, e.busy.perEntry.median), "", ""],
    ["1m", `cold create + first \`true\` with ${e.live} live sandboxes, interleaved with 1l`, ms(e.busy.sdk), `no other sandbox (with 1k): ${ms(e.idle.sdk)}`, ratio(e.busy.sdk.median, e.idle.sdk.median), "", ""],
    ["2", "`spawn(\"true\")` round trip, live sandbox (stdout/stderr piped)", ms(t.piped), `local \`child_process.spawn('/bin/true')\`, piped: ${ms(t.localPipe)}`, ratio(t.piped.median, t.localPipe.median), "≤ 1.5×", ok(t.piped.median <= 1.5 * t.localPipe.median)],
    ["2a", "… with stdout/stderr `\"null\"`", ms(t.nul), `local, stdio ignore: ${ms(t.localIgnore)}`, ratio(t.nul.median, t.localIgnore.median), "≤ 1.5×", ok(t.nul.median <= 1.5 * t.localIgnore.median)],
    ["2m", `… while \`/metrics\` is scraped every 250 ms (1 s blocks, alternating with unscraped ones; a scrape of ${(mx.bytes / 1024).toFixed(0)} KiB took ${ms(mx.scrape)})`, ms(mx.scraped), `same sandbox, not scraped: ${ms(mx.quiet)}`, ratio(mx.scraped.median, mx.quiet.median), "≤ 1.1×", ok(mx.scraped.median <= 1.1 * mx.quiet.median)],
    ["3", `process stdout, \`head -c ${GiBof(CFG.stdoutBytes)} /dev/zero\``, mbs(s.sdk), `raw \`ws\` server→client, 64 KiB frames: ${mbs(s.floor)}`, pct(s.sdk.median, s.floor.median), "≥ 50 %", ok(s.sdk.median >= 0.5 * s.floor.median)],
    ["3a", `… peak RSS growth while reading ${GiBof(CFG.stdoutBytes)}: client / daemon`, `${mb(s.clientGrowth)} / ${mb(s.daemonGrowth)}`, "", "", "≤ 64 MB for 1 GiB", ok(s.clientGrowth <= 64 && s.daemonGrowth <= 64)],
    ["4", `file upload, ${GiBof(CFG.fileBytes)} (\`fs.writeFile\` from a ReadableStream)`, mbs(fl.up) + (fl.failed.up.length ? `; **${fl.failed.up.length} of ${CFG.reps} failed**: ${fl.failed.up[0]}` : ""), `raw \`ws\` client→server (masked, a random key per frame), 64 KiB frames: ${mbs(fl.upFloor)}`, pct(fl.up.median, fl.upFloor.median), "≥ 50 %", ok(fl.up.median >= 0.5 * fl.upFloor.median && !fl.failed.up.length)],
    ["4f", "… diagnostic for 4: the floor with the masking key 0, which the SDK uses on loopback (and inside TLS): `ws` then leaves the bytes alone", "", `raw \`ws\` client→server, key 0, 64 KiB frames: ${mbs(fl.upZeroKey)}`, `${pct(fl.up.median, fl.upZeroKey.median)} (upload/this floor)`, "", ""],
    ["4a", `file download, ${GiBof(CFG.fileBytes)} (\`fs.readFileStream\`)`, fl.failed.down.length ? `${mbs(fl.down)} over the bytes that arrived; **${fl.failed.down.length} of ${fl.down.n} aborted**: ${fl.failed.down.join("; ")}` : mbs(fl.down), `raw \`ws\` server→client, 64 KiB frames: ${mbs(fl.downFloor)}`, pct(fl.down.median, fl.downFloor.median), "≥ 50 %", ok(fl.down.median >= 0.5 * fl.downFloor.median && !fl.failed.down.length)],
    ["4b", "… peak RSS growth, upload: client / daemon", `${mb(fl.growth.upClient)} / ${mb(fl.growth.upDaemon)}`, "", "", "≤ 64 MB for 1 GiB", ok(fl.growth.upClient <= 64 && fl.growth.upDaemon <= 64)],
    ["4c", "… peak RSS growth, download: client / daemon", `${mb(fl.growth.downClient)} / ${mb(fl.growth.downDaemon)}`, "", "", "≤ 64 MB for 1 GiB", ok(fl.growth.downClient <= 64 && fl.growth.downDaemon <= 64)],
    ["4d", "… diagnostic for 4: the same write by `dd` inside the sandbox (256 KiB blocks to a new file in /home/user, fdatasync, `mv` over the target, as `fs.writeFile` does with what it receives): the storage's own pace", mbs(fl.dd), `upload (row 4): ${mbs(fl.up)}`, pct(fl.up.median, fl.dd.median) + " (upload/dd)", "", ""],
    ["4e", "… diagnostic for 4: the same upload into a tmpfs inside the sandbox (`/dev/shm`: no disk, no loop device, fdatasync free), right after 4d: the stream pipeline's own pace", mbs(fl.upTmpfs), `raw \`ws\` client→server: ${mbs(fl.upFloor)}`, pct(fl.upTmpfs.median, fl.upFloor.median), "", ""],
    ["5", `idle PSS per sandbox, whole tree: bwrap + supervisor + the daemon's growth ÷ ${i.n} (${i.n} live, after one \`true\` each)`, mb(i.treePss), `bwrap (same argv) + idle supervisor, started directly: ${mb(i.floorPss)}`, ratio(i.treePss, i.floorPss), "≤ 1 MB", ok(i.treePss <= 1)],
    ["5a", "… of which bwrap + supervisor: PSS after one `true` / fresh (RSS)", `${mb(i.usedPss)} / ${mb(i.freshPss)} (RSS ${mb(i.usedRss)} / ${mb(i.freshRss)})`, `${mb(i.floorPss)} (RSS ${mb(i.floorRss)})`, ratio(i.usedPss, i.floorPss), "", ""],
    ["5b", `… of which the daemon's share: its PSS growth with ${i.n} sandboxes ÷ ${i.n}, after one \`true\` each / fresh`, `${mb(i.daemonPssGrowthUsed / i.n)} / ${mb(i.daemonPssGrowth / i.n)}`, `total ${sgn(i.daemonPssGrowthUsed)} PSS (${sgn(i.daemonGrowthUsed)} RSS)`, "", "", ""],
    ["5c", "bwrap (same argv) holding only `sleep`", "", `${mb(i.sleepPss)} PSS, ${mb(i.sleepRss)} RSS`, "", "(anchors 0.39 MB PSS, 5.3 MB RSS)", ""],
    ["5d", `host MemAvailable drop per sandbox, ${i.n} live (after one \`true\` each / fresh): processes, kernel memory, page cache`, `${mb(i.availPerSandbox)} / ${mb(i.availDrop / i.n)}`, "", `${ratio(i.availPerSandbox, i.treePss)} of row 5`, "", ""],
    ["5e", `… unreclaimable kernel memory per sandbox (meminfo SUnreclaim + KernelStack + PageTables + Percpu growth ÷ ${i.n}), after one \`true\` each / fresh`, `${mb(i.kernelPerSandbox)} / ${mb(i.kernelGrowth / i.n)}`, "", "", "", ""],
    ["5f", `idle sandboxes this ${hostGiB} GiB host holds with ≥ 90 % of its memory left (extrapolated linearly from ${i.n}): by MemAvailable drop (5d) / by PSS + kernel (5 + 5e); the smaller counts`, `${fitAvail} / ${fitKernel}`, "", "", `1,000 on a 24 GiB host, ≥ 90 % left (≤ ${mb(PER_SANDBOX_BUDGET)} each; 1,000 here: ${at1000.toFixed(2)} GiB)`, ok(i.hostCost <= PER_SANDBOX_BUDGET)],
    ["5g", "… the kernel's charge to each sandbox's memory cgroup (fresh): its processes' pages and the kernel memory they allocated", mb(i.cgroupCharge), "", "", "", ""],
    ["6", "sandbox start, hardening **on** vs off: bwrap + supervisor to its ready frame", ms(h.on.sup), `off (allow-all seccomp program, no cgroups/rlimits/sbx-launch): ${ms(h.off.sup)}`, ratio(h.on.sup.median, h.off.sup.median), "", ""],
    ["6a", "… same argv running `/usr/bin/true` (no seccomp either way: only the supervisor installs it), until bwrap exits", ms(h.on.tru), `off: ${ms(h.off.tru)}`, ratio(h.on.tru.median, h.off.tru.median), "", ""],
    ["6b", `\`true\` round trip inside the sandbox (node \`child_process.spawn('/bin/true')\` in a process the supervisor started, ${CFG.hardRttReps}×${CFG.hardRttN})`, ms(h.on.rtt), `off: ${ms(h.off.rtt)}; on the host, outside any sandbox: ${ms(h.host.rtt)}`, ratio(h.on.rtt.median, h.off.rtt.median), "", ""],
    ["6c", "… decomposition of 6 / 6b", "", `${onOff("sup", "6")}. ${onOff("rtt", "6b")}`, `${ratio(h.seccomp.sup.median, h.off.sup.median)} / ${ratio(h.wrap.sup.median, h.off.sup.median)} (6)`, "", ""],
    ["6d", "cgroup setup (mkdir × 4 + 5 limit writes) / removal per sandbox, not in 6–6b", `${ms(h.cgSetup)} / ${ms(h.cgRemove)}`, "", "", "", ""],
    ["6e", "… samples of 6 / 6a throttled by the CPU quota (`cpu.stat` nr_throttled > 0), on", throttleText(h.throttled, "on", ["sup", "tru"]), `cgroups + rlimits + uid (sbx-launch) only, 6: ${throttleText(h.throttled, "wrap", ["sup"])}`, "", "", ""],
  ];
}

export function table(R) {
  const esc = (x) => String(x).replace(/\|/g, "\\|");
  return [
    "| # | metric | sbx | floor (same run) | ratio sbx/floor | target | met |",
    "|---|---|---|---|---|---|---|",
    ...tableRows(R).map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
}
