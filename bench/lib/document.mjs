// RESULTS.md: the header, the table, how each figure is taken, the egress section; written so
// that the neighbours section (bench/neighbours.ts, between its markers) survives a rewrite.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BENCH, CFG, QUICK } from "./env.mjs";
import { table } from "./report.mjs";

/** A section another bench writes: `<!-- name:start ... -->` up to `<!-- name:end -->`. */
const SECTIONS = /<!-- ([\w-]+):start[\s\S]*?<!-- \1:end -->/g;

function howTaken(R) {
  const { warm: w, par: p, idle: i, hard: h } = R;
  const range = ([lo, hi]) => `${lo}..${hi}`;
  return `How each figure is taken:
- **1** one \`Sandbox.create()\` (a new WebSocket connection + \`sandbox.create\`) then \`spawn("true")\` until its exit status arrives, then \`kill()\` and wait until no sandbox-uid process is left. The floor replays the bwrap argv the daemon really used (${R.bwrapArgc} arguments, read from \`/proc/<bwrap>/cmdline\` of a live sandbox: \`--as-pid-1\`, \`--cap-add CAP_SYS_ADMIN --cap-add CAP_SETPCAP\`, \`/.sbx/supervisor --seccomp-fd N --ptys M\`) with the same fd table as \`launcher.ts\` (a copy of the daemon's /etc view as the sandbox sees it for its \`--ro-bind-fd FD /etc\`, /etc data pipes, \`--ro-bind-fd\` of the node binary, the very supervisor binary the sandbox got, the preload and trust files as the sandbox sees them, a plain directory of its own for each \`--bind-fd\`, the daemon's seccomp program \`buildPolicy(hostArch())\` on a pipe at the supervisor's \`--seccomp-fd\`)${R.omitted.length ? `, **without** ${R.omitted.map((o) => `\`${o}\``).join(", ")} (not recoverable from a live sandbox)` : ""}, started directly as a host uid like the sandbox's. Row 1's floor (the target's) replaces the supervisor command with \`/usr/bin/true\` and times until bwrap exits; 1c keeps the supervisor and times until its first stdout byte (its "ready" frame, which is what the daemon waits for); 1d runs \`/.sbx/node -e 0\`. 1i is what \`Sandbox.create()\` adds on top of the daemon's full launch as replayed in row 6 (on): the WebSocket connection, the sandbox's storage (claiming an ext4 image the storage stock formatted and mounted ahead, or making one when the stock is empty), cgroup, egress proxy and record, the handshake.
- **1e** a second daemon (its own state dir and uid range) with the default \`warmPool\` (${w.size}); the same \`Sandbox.create()\` + first \`spawn("true")\` + \`kill()\`. Before each sample the pool is left to refill: the killed sandbox's processes are gone, ${w.size} unowned sandboxes' supervisors run with nothing else in them (the refill's throwaway \`true\` is done), then 250 ms more. The daemon's log says which creates were served from the pool. 1j: each sample of 1e is followed (after the same refill wait) by one with \`memory\` and \`cpus\` other than the defaults, which the pool serves by writing the sandbox's cgroup limits when it hands it out. 1r: each is followed by one more with the defaults as a process's first create would be made: the client opens the next create's connection ahead once a process keeps creating (\`spare.ts\`), keyed by the URL, and this one's URL differs in a query the daemon ignores, so it connects and upgrades itself. 1h (diagnostic, ${w.settled.n} samples): create from the pool, wait until the pool has refilled, then time the first \`spawn("true")\`. Every other row uses a daemon with \`"warmPool": 0\` in its config file (and the default \`storageStock\`: its creates claim a pre-formatted, mounted file system; see row 1i).
- **1p** ${p.width} \`Sandbox.create()\` + first \`spawn("true")\` started in the same tick, each on its own connection; the wall time until the last exit status arrived (1q: until the last create returned); then all are killed. Interleaved with the floor: ${p.width} bare bwrap launches as in row 1 (same argv, \`/usr/bin/true\`, each as its own host uid) started at once, until the last has exited. ${p.total.n} batches of each.
- **1k** the argv captured in row 1 (the daemon's /etc view: one \`--ro-bind-fd FD /etc\`), and the same argv with the per-entry binds the view replaced where that bind stands (\`--ro-bind /etc/NAME /etc/NAME\` for each \`ETC_SHARED\` entry the host has, then each path links from /usr and /opt lead to, as \`launcher.ts\` wrote them before), each running \`/usr/bin/true\` until bwrap exits, interleaved with row 1's \`Sandbox.create()\` + first \`spawn("true")\` (1m), ${CFG.etcN} samples each in rotating order. Then ${R.etc.live} sandboxes are created and left running (each adds its storage mount to the host's mount table, which bwrap copies into its namespace and reads whole for every bind it makes) and the same is measured again (1l, 1m). \`bench/ab.mjs\` runs row 1 against another built tree interleaved (two daemons at once).
- **2** \`spawn("true")\` + await \`status\` in one live sandbox (after 30 warm-up spawns), interleaved with \`child_process.spawn('/bin/true')\` until \`exit\` in this process.
- **3** \`spawn("head", ["-c", N, "/dev/zero"])\`, stdout read through the Web ReadableStream until it ends, plus the exit status. Floor: a separate \`ws\` server process sends the same bytes in 64 KiB binary frames to a \`ws\` client in this process. RSS growth is peak minus the value just before (after a GC), sampled every 20 ms.
- **4** \`fs.writeFile(path, ReadableStream)\` of generated 1 MiB chunks into /home/user (the sandbox's own storage mount), then \`fs.readFileStream\` of the same file, read to its end. Floors: the same \`ws\` pair, client→server (masked with \`ws\`'s random key per frame) and server→client. The SDK masks with the key 0 on loopback (nothing on the way reads the bytes; \`ws\` then skips the XOR pass and the copy), so 4f gives the floor with the key 0 too. 4d (a diagnostic, not a floor of the target): right after each upload, \`dd\` inside the sandbox writes as many bytes to a new file beside it (256 KiB blocks, \`conv=fdatasync\`) and \`mv\`s it over the uploaded one, which is what the supervisor does with an upload's bytes (temporary file, fdatasync, rename): the pace of the sandbox's storage (ext4 on a loop device), which an upload cannot beat. 4e (a diagnostic too): right after 4d, the same \`fs.writeFile\` into \`/dev/shm\` (a tmpfs: bwrap's /dev, the sandbox user's own), removed after each: what the upload costs without the sandbox's storage. \`bench/cpu-split.mjs\` gives the CPU seconds each party (client, daemon, sandbox) spends per transfer.
- **5** ${i.n} sandboxes, each from its own \`Sandbox.create()\` (${i.createSeconds.toFixed(1)} s for all of them, one after the other); PSS (smaps_rollup) and VmRSS of every process running as that sandbox's host uid, summed per sandbox and averaged over the sandboxes. Processes of one sandbox (MB RSS / PSS): ${i.procs}. The daemon's share is its own PSS growth from before the first create to ${i.n} sandboxes alive (2 s after the last create / 1.5 s after each ran \`true\`), divided by ${i.n}; the sandbox's egress proxy and streams live in the daemon. 5d: /proc/meminfo MemAvailable (median of 5 reads) at the same two moments, subtracted from the mean of its value before the first create and 1.5 s after the last sandbox and its storage mount were gone, divided by ${i.n}: unlike PSS it also counts kernel memory (page tables, namespaces, the mounted storage, cgroups) and page cache (other work on the host moves this figure too: from before to after, MemAvailable moved ${i.availDrift >= 0 ? "−" : "+"}${Math.abs(i.availDrift).toFixed(1)} MB). 5e: the same way, the growth of the kernel's unreclaimable memory (global counters, so also moved by other work: ${i.kernelDrift >= 0 ? "+" : "−"}${Math.abs(i.kernelDrift).toFixed(1)} MB from before to after); it holds the sandboxes' namespaces, mounts, loop devices and cgroups, which PSS does not see. 5f extrapolates linearly: 10 % of MemTotal divided by the cost per sandbox (${i.n} were measured, not more), the larger of 5d and 5 + 5e deciding; the target's 1,000 alive at once are measured by \`bench/density.mjs\` (its section below). 5g: mean \`memory.usage_in_bytes\` of the sandboxes' memory cgroups. Floor: the same bwrap argv + supervisor started directly (${i.floorN} of them), idle.
- **6** the argv captured in row 1, replayed four ways, interleaved (${CFG.hardN} samples each): **on** = exactly the daemon's root-mode launch (\`launchArgv\` in \`launcher.ts\`): the daemon's seccomp program on the supervisor's fd, and \`sbx-launch --cgroup-procs <each cgroup.procs file> --oom-score-adj ${R.hardening.oomScoreAdj} ${R.hardening.rlimits.join(" ")} --uid U -- bwrap …\` (native/launch.c: joins the cgroups, sets oom_score_adj, the rlimits and core ${R.hardening.core}, drops to U with no supplementary groups, execs bwrap: one exec where runs before 2026-12-05 had \`sh\` + \`prlimit\` + \`setpriv\`) into a fresh cgroup per sample under \`/sys/fs/cgroup/{memory,cpu,cpuacct,pids}/sbx-bench-<pid>/<n>\` with the limits the daemon wrote for the captured sandbox (${Object.entries(R.hardening.cgroupValues).filter(([, v]) => v !== null).map(([k, v]) => `${k} ${v}`).join(", ")}; oom_score_adj ${R.hardening.oomScoreAdj}); **off** = the same argv with a one-instruction allow-everything program on that fd (the supervisor refuses to start without one), bwrap spawned directly as host uid U (node's uid/gid option, which also clears supplementary groups), no cgroup, no rlimits. The partial variants (6c) take one of the two. Each variant was checked first, by a shell the replayed supervisor spawned (\`get_mempolicy\` is 0 unfiltered, −1 EPERM under the daemon's filter): ${Object.entries(h.seen).map(([k, v]) => `${k}: \`${v}\``).join("; ")}. 6b: the replayed supervisor spawns \`/.sbx/node -e <script>\` over its channel, as the daemon does; the script does 20 warm-up then ${CFG.hardRttN} sequential \`child_process.spawn('/bin/true', {stdio: "pipe"})\` until \`exit\` and prints the times (every sample pooled; the same script on the host gives the outside figure). Creating and removing the cgroup (6d) is outside the timed part, as the daemon does it before launching and after bwrap has exited.

Host uids: each daemon claims a free range itself (\`uid-range.ts\`) and this bench reads it from \`<stateDir>/daemon.json\`: rows 1–6 daemon ${range(R.uids.main)}, the warm-pool daemon of row 1e ${range(w.uids)}. The floors run as uids at the top of the first daemon's range, which it hands out from the bottom.`;
}

export function renderResults(m, R, egress) {
  return `# sbx benchmark results

Generated by \`node bench/run.mjs\` (\`pnpm bench\`) on ${new Date().toISOString()}${QUICK ? " — **QUICK smoke run, not representative**" : ""}; the whole run took ${R.seconds.toFixed(0)} s.

Code measured: ${m.code} (its built \`dist/\`; the supervisor is the native \`dist/sbx-supervisor\`).

Machine: ${m.nproc} cores (${m.cpu}), ${m.memGiB} GiB RAM, Node ${m.node}, ${m.bwrap}, kernel ${m.kernel}; \`ws\` bufferutil addon ${m.bufferutil}. Daemons in root mode (one host uid per sandbox), state dirs in ${tmpdir()}. 1-minute load average ${m.loadStart} at the start, ${R.loadEnd} at the end (other work on the machine makes every figure noisier).

Medians with p90 (for throughputs, the 10th percentile — the slow tail) over n samples; floors are measured in the same run, interleaved with the sbx samples. Targets from \`shared/TARGETS.md\`.

${table(R)}

${howTaken(R)}

## Egress proxy

From \`bench/egress.mjs\`: one client (\`bench/egress-client.mjs\`) makes sequential GETs to a local
upstream directly, through a minimal Node CONNECT proxy (the floor of a proxy hop; HTTPS only),
and from inside a sandbox through sbx's proxy (upstream reached by name via \`--resolve\`).
Targets: tunnel ≤ 1.2× a minimal CONNECT proxy; intercepted HTTPS with secret substitution,
keep-alive, ≤ +0.3 ms per request over direct.

${egress}
`;
}

/**
 * Writes bench/RESULTS.md, keeping the sections other benches write into the file it replaces
 * (neighbours, gateway, images, density: each between its own start and end markers).
 */
export function writeResults(md) {
  const path = join(BENCH, "RESULTS.md");
  const kept = existsSync(path) ? [...readFileSync(path, "utf8").matchAll(SECTIONS)].map((m) => m[0]) : [];
  writeFileSync(path, [md.trimEnd(), ...kept].join("\n\n") + "\n");
}
