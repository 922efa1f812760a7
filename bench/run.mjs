#!/usr/bin/env node
// sbx benchmarks: every figure beside its floor, measured in the same run on this machine.
// Usage: node bench/run.mjs   (after `pnpm build`; `pnpm bench` does both)
//        BENCH_QUICK=1 node bench/run.mjs   (small sizes, few iterations: a smoke run)
//        BENCH_ROOT=/path/to/other/checkout [BENCH_LABEL=text] node bench/run.mjs   (measure another built tree)
//        BENCH_TRACE=1 logs the time of each step of every cold-start iteration
// Writes bench/RESULTS.md. Needs root (sandboxes run as host uids 200000+), bwrap >= 0.8, cgroups.
// Two daemons: one with its warm pool off (every create is cold) for all rows but 1e, and one with
// the default pool for 1e. Rows 6 replay the daemon's launch with and without its hardening.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = process.env.BENCH_ROOT ? resolve(process.env.BENCH_ROOT) : join(BENCH, "..");
const CLI = join(ROOT, "packages/daemon/dist/cli.js");
const SUPERVISOR = join(ROOT, "packages/daemon/dist/supervisor.mjs");
const requireFromClient = createRequire(join(ROOT, "packages/client/package.json"));
const WebSocket = requireFromClient("ws");
const { Sandbox } = await import(pathToFileURL(join(ROOT, "packages/client/dist/index.js")).href);
const daemonModule = await import(pathToFileURL(join(ROOT, "packages/daemon/dist/index.js")).href);

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");

const QUICK = process.env.BENCH_QUICK === "1";
const MiB = 1 << 20;
const CFG = QUICK
  ? { coldN: 5, warmN: 5, rttN: 40, stdoutBytes: 64 * MiB, fileBytes: 64 * MiB, reps: 2, idleN: 4, floorIdleN: 2, hardN: 3, hardRttReps: 1, hardRttN: 50 }
  : { coldN: 30, warmN: 30, rttN: 300, stdoutBytes: 1024 * MiB, fileBytes: 512 * MiB, reps: 3, idleN: 100, floorIdleN: 5, hardN: 40, hardRttReps: 6, hardRttN: 100 };
/**
 * Host uids. The bench daemon gets its own uid base so that its sandboxes cannot be confused
 * with those of another daemon on this host (tests, a developer's daemon) that starts at 200000;
 * the raw-bwrap floors run as uids above both.
 */
const DAEMON_UID_BASE = 230000;
/** The second daemon, the one with its default warm pool (row 1e). */
const POOL_UID_BASE = 245000;
const UID_LO = DAEMON_UID_BASE;
const FLOOR_UID = 260000;
const UID_HI = FLOOR_UID + 1000;

const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

// ---------------------------------------------------------------- statistics

function stats(xs) {
  if (xs.length === 0) return { n: 0, median: NaN, p90: NaN, min: NaN, max: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { n: s.length, median, p90: q(0.9), min: s[0], max: s[s.length - 1] };
}
const f1 = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const ms = (st) => `${f1(st.median)} ms (p90 ${f1(st.p90)}, n=${st.n})`;
const mbs = (st) => (st.n ? `${st.median.toFixed(0)} MB/s (p90-low ${lowP90(st).toFixed(0)}, n=${st.n})` : "no complete run");
const mb = (x) => `${x.toFixed(1)} MB`;
const sgn = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(1)} MB`;
/** For throughputs the pessimistic tail is the low end. */
const lowP90 = (st) => st._xs ? [...st._xs].sort((a, b) => a - b)[Math.floor(0.1 * st._xs.length)] : st.min;
const tput = (xs) => Object.assign(stats(xs), { _xs: xs });

// ---------------------------------------------------------------- /proc helpers

function procStatus(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const num = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? NaN);
    const state = /^State:\s+(\S)/m.exec(s)?.[1] ?? "?";
    return { pid, uid: num("Uid"), ppid: num("PPid"), rssKb: num("VmRSS") || 0, name: /^Name:\s+(\S+)/m.exec(s)?.[1] ?? "?", state };
  } catch {
    return null;
  }
}

function pssKb(pid) {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * Every live process running as one of this bench's sandbox host uids (its daemon's and the
 * floors'). Zombies are left out: a killed sandbox's inner bwrap is reparented to the host's
 * init, which may take seconds to reap it; it holds no memory and no namespace by then.
 */
function sandboxProcs(filterUid = null) {
  const out = [];
  for (const e of readdirSync("/proc")) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    const st = procStatus(e);
    if (st && st.state !== "Z" && st.uid >= UID_LO && st.uid < UID_HI && (filterUid === null || st.uid === filterUid)) out.push(st);
  }
  return out;
}

async function waitNoSandboxProcs(filterUid = null, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (sandboxProcs(filterUid).length > 0) {
    if (Date.now() > deadline) throw new Error(`sandbox processes still alive after ${timeoutMs} ms: ${JSON.stringify(sandboxProcs(filterUid))}`);
    await sleep(2);
  }
}

const rssMb = (pid) => (procStatus(pid)?.rssKb ?? 0) / 1024;

/** Peak RSS of this process and of the daemon while `fn` runs, relative to just before it. */
async function withRssPeak(daemonPid, fn) {
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

// ---------------------------------------------------------------- daemon

/**
 * One daemon of this bench. `warmPool: 0` turns its pool off (config file key); `null` leaves the
 * daemon's default. Info lines (`quiet: false`) are kept for counting, not echoed.
 */
async function startDaemon({ uidBase = DAEMON_UID_BASE, warmPool = 0, quiet = true } = {}) {
  const stateDir = mkdtempSync(join(tmpdir(), "sbx-bench-"));
  const config = `${stateDir}.config.json`;
  writeFileSync(config, JSON.stringify({ uidBase, ...(warmPool === null ? {} : { warmPool }) }));
  const args = [CLI, "daemon", "--listen", "127.0.0.1:0", "--state-dir", stateDir, "--config", config, ...(quiet ? ["--quiet"] : [])];
  const proc = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let partial = "";
  proc.stderr.on("data", (d) => {
    stderr += d;
    const lines = (partial + d).split("\n");
    partial = lines.pop();
    // warnings and errors only (what --quiet leaves)
    for (const l of lines) if (!/^\S+ info /.test(l)) process.stderr.write(`[daemon] ${l}\n`);
  });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (ws:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    proc.once("exit", (code) => reject(new Error(`daemon exited with ${code}: ${stderr}`)));
  });
  const token = readFileSync(join(stateDir, "token"), "utf8").trim();
  return {
    url, token, proc, stateDir, uidBase, opts: { url, token }, logs: () => stderr,
    /** This daemon's cgroup directory name (the daemon derives it from its state dir). */
    cgroupName: `sbx-${createHash("sha256").update(stateDir).digest("hex").slice(0, 12)}`,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(config, { force: true });
      // the daemon leaves its (empty) per-state-dir cgroup parents behind: remove this one's
      for (const c of CG_CONTROLLERS) try { rmdirSync(join("/sys/fs/cgroup", c, this.cgroupName)); } catch {}
    },
  };
}

// ---------------------------------------------------------------- raw bwrap floors

const ETC_DATA = {
  "/etc/passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\nuser:x:1000:1000:sandbox user:/home/user:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
  "/etc/group": "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
  "/etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
};
/** bwrap options that name an inherited fd, and how many arguments each takes. */
const FD_OPTIONS = { "--ro-bind-data": 2, "--bind-data": 2, "--file": 2, "--ro-bind-fd": 2, "--bind-fd": 2, "--seccomp": 1, "--add-seccomp-fd": 1 };
const FLOOR_DIRS = join(tmpdir(), `sbx-bench-floor-${process.pid}`);

/**
 * The exact argv the daemon gave bwrap for a live sandbox, read from /proc, and for every fd it
 * names something equivalent to hand a replayed bwrap: the /etc data, the node binary and the
 * supervisor bundle, an empty directory of the floor's own for a writable bind, and for
 * anything else the same file reopened (seccomp programs in a memfd or file). What cannot be
 * recovered (a pipe already drained) is dropped from the argv and listed in `omitted`.
 */
function captureSandbox(daemonPid) {
  const procs = sandboxProcs().filter((p) => p.name === "bwrap" && p.ppid === daemonPid);
  if (procs.length === 0) throw new Error("no bwrap child of the daemon found");
  const pid = procs[0].pid;
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  if (argv.at(-1) === "") argv.pop();
  const args = [];
  const fds = [];
  const omitted = [];
  const cmdAt = argv.lastIndexOf("/.sbx/node");
  for (let i = 1; i < argv.length; i++) {
    const opt = argv[i];
    const arity = i < cmdAt ? FD_OPTIONS[opt] : undefined;
    if (!arity) {
      args.push(opt);
      continue;
    }
    const fd = Number(argv[i + 1]);
    const dest = arity === 2 ? argv[i + 2] : null;
    const words = argv.slice(i, i + 1 + arity);
    i += arity;
    let source;
    if (opt.endsWith("-data") || opt === "--file") source = { kind: "data", data: ETC_DATA[dest] ?? recover(pid, fd) ?? "" };
    else if (dest === "/.sbx/node") source = { kind: "file", path: process.execPath };
    // the very bytes this sandbox got (the tree may have been rebuilt since the daemon started)
    else if (dest === "/.sbx/supervisor.mjs") source = { kind: "file", path: keepCopy(`supervisor-${pid}.mjs`, recover(pid, fd) ?? readFileSync(SUPERVISOR)) };
    else if (opt === "--bind-fd") source = { kind: "dir", dest, mode: dest === "/tmp" ? 0o1777 : 0o755 };
    // the same filter the daemon compiles for every sandbox
    else if (opt === "--seccomp") source = { kind: "data", data: daemonModule.buildPolicy(daemonModule.hostArch()) };
    else {
      // bwrap closes a bound fd once it is mounted; the file itself is still there inside the sandbox
      const data = recover(pid, fd) ?? (opt === "--ro-bind-fd" ? fromInside(pid, dest) : null);
      if (data === null) {
        omitted.push(words.join(" "));
        // a `--perms`/`--size` modifier right before it would now apply to the next option
        if (["--perms", "--size"].includes(args.at(-2))) args.splice(-2, 2);
        continue;
      }
      source = opt === "--ro-bind-fd" ? { kind: "file", path: keepCopy(`fd${fd}-${pid}`, data) } : { kind: "data", data };
    }
    fds.push({ fd, source });
    args.push(...words);
  }
  return { bwrap: argv[0], args, fds, omitted, argc: argv.length - 1, hardening: captureHardening(pid) };
}

/**
 * What the daemon's root-mode launch wrapped around that bwrap (the `sh` join script, `prlimit`
 * and `setpriv` exec'd into it, so only their effects are left to read): the cgroup limits it
 * sits under, its rlimits and its oom_score_adj.
 */
function captureHardening(pid) {
  const cg = {};
  for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n")) {
    const [, ctrls, path] = line.split(":");
    for (const c of (ctrls ?? "").split(",")) if (["memory", "cpu", "cpuacct", "pids"].includes(c)) cg[c] = path;
  }
  const read = (c, file) => {
    try {
      return readFileSync(join("/sys/fs/cgroup", c, cg[c] ?? "/", file), "utf8").trim();
    } catch {
      return null;
    }
  };
  const limitsText = readFileSync(`/proc/${pid}/limits`, "utf8");
  const limit = (name) => new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, "m").exec(limitsText)?.slice(1, 3);
  const nofile = limit("Max open files");
  const nproc = limit("Max processes");
  const core = limit("Max core file size");
  const values = {
    "memory.limit_in_bytes": read("memory", "memory.limit_in_bytes"),
    "memory.memsw.limit_in_bytes": read("memory", "memory.memsw.limit_in_bytes"),
    "cpu.cfs_period_us": read("cpu", "cpu.cfs_period_us"),
    "cpu.cfs_quota_us": read("cpu", "cpu.cfs_quota_us"),
    "pids.max": read("pids", "pids.max"),
  };
  const inCgroups = Object.values(cg).some((p) => p && p !== "/");
  return {
    cgroupPaths: cg,
    cgroupValues: inCgroups ? values : null,
    prlimit: [`--nofile=${nofile.join(":")}`, `--core=${core.join(":")}`, ...(nproc && nproc[0] !== "unlimited" ? [`--nproc=${nproc.join(":")}`] : [])],
    oomScoreAdj: readFileSync(`/proc/${pid}/oom_score_adj`, "utf8").trim(),
  };
}

/** The daemon's own cgroup join script, read from its bundle (so a change there is replayed here). */
const joinScript = () => (joinScript.cached ??= readJoinScript());
function readJoinScript() {
  const text = readFileSync(join(ROOT, "packages/daemon/dist/index.js"), "utf8");
  const m = /JOIN_SCRIPT = ('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")/.exec(text);
  if (!m) throw new Error("could not find JOIN_SCRIPT in packages/daemon/dist/index.js: update bench/run.mjs");
  return runInNewContext(m[1]);
}

const BENCH_CG = `sbx-bench-${process.pid}`;
const CG_CONTROLLERS = ["memory", "cpu", "cpuacct", "pids"];

/** Controller dirs (deduplicated where two names reach one hierarchy) for this bench's cgroup `n`. */
function benchCgroupDirs(n) {
  const dirs = new Map();
  for (const c of CG_CONTROLLERS) dirs.set(c, join(realpathSync(join("/sys/fs/cgroup", c)), BENCH_CG, String(n)));
  return dirs;
}

/** A throwaway cgroup with the limits the daemon wrote for the captured sandbox: its procs files. */
function makeBenchCgroup(n, values) {
  const dirs = benchCgroupDirs(n);
  const made = [...new Set(dirs.values())];
  for (const dir of made) mkdirSync(dir, { recursive: true });
  const put = (c, file) => values[file] !== null && values[file] !== undefined && writeFileSync(join(dirs.get(c), file), values[file]);
  put("memory", "memory.limit_in_bytes");
  if (existsSync(join(dirs.get("memory"), "memory.memsw.limit_in_bytes"))) put("memory", "memory.memsw.limit_in_bytes");
  put("cpu", "cpu.cfs_period_us");
  put("cpu", "cpu.cfs_quota_us");
  put("pids", "pids.max");
  return { n, made, procsFiles: made.map((d) => join(d, "cgroup.procs")) };
}

/** Kills what is left in it and removes it, retrying while the kernel finishes the exits. */
async function removeBenchCgroup(cg) {
  for (const dir of cg.made) {
    for (let attempt = 0; ; attempt++) {
      try {
        for (const pid of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {}
        }
        rmdirSync(dir);
        break;
      } catch (err) {
        if (err.code === "ENOENT") break;
        if (err.code !== "EBUSY" || attempt > 250) throw err;
        await sleep(4);
      }
    }
  }
}

function removeBenchCgroupBases() {
  for (const c of CG_CONTROLLERS) {
    const base = join(realpathSync(join("/sys/fs/cgroup", c)), BENCH_CG);
    if (!existsSync(base)) continue;
    for (const e of readdirSync(base, { withFileTypes: true })) if (e.isDirectory()) try { rmdirSync(join(base, e.name)); } catch {}
    try { rmdirSync(base); } catch {}
  }
}

/** The same capture without `--seccomp N` (and without the fd that carried the program). */
function withoutSeccomp(capture) {
  const i = capture.args.indexOf("--seccomp");
  if (i < 0) return capture;
  const fd = Number(capture.args[i + 1]);
  return { ...capture, args: [...capture.args.slice(0, i), ...capture.args.slice(i + 2)], fds: capture.fds.filter((f) => f.fd !== fd) };
}

/**
 * The daemon's root-mode launch prefix for host uid `uid`: join the cgroups (and set
 * oom_score_adj) as root in `sh`, then `prlimit`, then `setpriv` down to the uid, then bwrap.
 */
function hardenedPrefix(capture, uid, procsFiles) {
  return [
    "/bin/sh", "-c", joinScript(), "sbx-join", ...procsFiles, "--",
    "/usr/bin/prlimit", ...capture.hardening.prlimit, "--",
    "/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--",
  ];
}

function keepCopy(name, data) {
  mkdirSync(FLOOR_DIRS, { recursive: true, mode: 0o755 });
  const path = join(FLOOR_DIRS, name);
  writeFileSync(path, data, { mode: 0o644 });
  return path;
}

/** A file as the sandbox of bwrap `pid` sees it, read through its supervisor's root. */
function fromInside(pid, path) {
  const uid = procStatus(pid)?.uid;
  for (const p of sandboxProcs(uid)) {
    if (p.name !== "node") continue;
    try {
      return readFileSync(`/proc/${p.pid}/root${path}`);
    } catch {}
  }
  return null;
}

/** The content behind fd `fd` of process `pid` if it can be read again (a file or memfd, not a pipe). */
function recover(pid, fd) {
  try {
    if (/^(pipe|socket):/.test(readlinkSync(`/proc/${pid}/fd/${fd}`))) return null;
    return readFileSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return null;
  }
}

/** The same argv with the supervisor command replaced. */
function withCommand(capture, command) {
  const i = capture.args.lastIndexOf("/.sbx/node");
  if (i < 0) throw new Error("captured bwrap argv has no /.sbx/node command");
  return { ...capture, args: [...capture.args.slice(0, i), ...command] };
}

function floorDir(uid, dest, mode) {
  const dir = join(FLOOR_DIRS, String(uid), dest.replace(/\//g, "_"));
  mkdirSync(dir, { recursive: true });
  chmodSync(FLOOR_DIRS, 0o755);
  chmodSync(join(FLOOR_DIRS, String(uid)), 0o755);
  chownSync(dir, uid, uid);
  chmodSync(dir, mode);
  return dir;
}

/** bwrap with the captured argv as host uid `uid`: through node's uid option, or behind `capture.prefix` (which drops to it). */
function spawnRawBwrap(capture, uid) {
  const stdio = ["pipe", "pipe", "pipe"];
  const opened = [];
  const feeds = [];
  for (const { fd, source } of capture.fds) {
    while (stdio.length <= fd) stdio.push("ignore");
    if (source.kind === "data") {
      stdio[fd] = "pipe";
      feeds.push([fd, source.data]);
    } else {
      const path = source.kind === "file" ? source.path : floorDir(uid, source.dest, source.mode);
      const h = openSync(path, "r");
      opened.push(h);
      stdio[fd] = h;
    }
  }
  try {
    const child = capture.prefix
      ? spawn(capture.prefix[0], [...capture.prefix.slice(1), capture.bwrap, ...capture.args], { stdio, env: {} })
      : spawn(capture.bwrap, capture.args, { stdio, uid, gid: uid, env: {} });
    // a bwrap that dies early resets its pipes: that must not take the bench down
    for (const stream of child.stdio) stream?.on?.("error", () => {});
    for (const [fd, data] of feeds) child.stdio[fd].end(data);
    return child;
  } finally {
    for (const h of opened) closeSync(h);
  }
}

/** bwrap + supervisor until the supervisor's first byte (its "ready" frame) arrives. */
async function rawSupervisorStart(capture, uid) {
  const t0 = now();
  const child = spawnRawBwrap(capture, uid);
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const exited = new Promise((r) => child.once("exit", r));
  await Promise.race([
    new Promise((r) => child.stdout.once("data", r)),
    exited.then(() => { throw new Error(`raw bwrap exited before the supervisor spoke: ${err}`); }),
  ]);
  const t = now() - t0;
  child.kill("SIGKILL");
  await exited;
  await waitNoSandboxProcs(uid);
  return t;
}

/** bwrap with the same argv running `command` (default /usr/bin/true), until it has exited. */
async function rawBwrapTrue(capture, uid, command = ["/usr/bin/true"]) {
  return (await rawBwrapRun(capture, uid, command)).t;
}

/** The same, also returning what the command wrote to stdout. */
async function rawBwrapRun(capture, uid, command) {
  const t0 = now();
  const child = spawnRawBwrap(withCommand(capture, command), uid);
  let err = "";
  let out = "";
  child.stderr.on("data", (d) => (err += d));
  child.stdout.on("data", (d) => (out += d));
  const closed = new Promise((r) => child.once("close", r));
  const [code] = await new Promise((r) => child.once("exit", (...a) => r(a)));
  const t = now() - t0;
  await closed;
  if (code !== 0) throw new Error(`raw bwrap ${command.join(" ").slice(0, 80)} exited ${code}: ${err}`);
  await waitNoSandboxProcs(uid);
  return { t, out };
}

function localTrue(stdio) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn("/bin/true", [], { stdio });
    child.once("error", reject);
    child.once("exit", () => resolve(now() - t0));
  });
}

// ---------------------------------------------------------------- raw ws floor

async function startWsPeer() {
  const proc = spawn(process.execPath, [join(BENCH, "ws-peer.mjs")], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once("exit", (c) => reject(new Error(`ws peer exited ${c}`)));
  });
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, maxPayload: 64 << 20 });
  ws.binaryType = "nodebuffer";
  await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
  let onText = null;
  let onBinary = null;
  ws.on("message", (data, isBinary) => (isBinary ? onBinary?.(data) : onText?.(data.toString())));
  const nextText = () => new Promise((r) => (onText = (t) => ((onText = null), r(t))));
  return {
    /** Server→client (unmasked frames): MB/s. */
    async download(bytes, frame) {
      let got = 0;
      onBinary = (d) => (got += d.length);
      const t0 = now();
      const done = nextText();
      ws.send(JSON.stringify({ op: "send", bytes, frame }));
      await done;
      const t = now() - t0;
      if (got !== bytes) throw new Error(`ws floor got ${got} of ${bytes}`);
      return bytes / 1e6 / (t / 1000);
    },
    /** Client→server (masked frames), with at most 16 MiB handed to ws and not yet written: MB/s. */
    async upload(bytes, frame) {
      const ready = nextText();
      ws.send(JSON.stringify({ op: "recv", bytes }));
      await ready;
      const buf = Buffer.alloc(frame, 97);
      const t0 = now();
      const done = nextText();
      await new Promise((resolve) => {
        let sent = 0;
        let inflight = 0;
        const limit = Math.max(1, Math.floor((16 << 20) / frame));
        const pump = () => {
          while (inflight < limit && sent < bytes) {
            const n = Math.min(frame, bytes - sent);
            sent += n;
            inflight++;
            ws.send(n === frame ? buf : buf.subarray(0, n), { binary: true }, () => {
              inflight--;
              if (sent < bytes) pump();
              else if (inflight === 0) resolve();
            });
          }
        };
        pump();
      });
      await done;
      return bytes / 1e6 / ((now() - t0) / 1000);
    },
    async stop() {
      ws.terminate();
      proc.kill();
    },
  };
}

// ---------------------------------------------------------------- SDK measurements

async function sdkColdStart(d) {
  const t0 = now();
  const sb = await Sandbox.create(d.opts);
  const t1 = now();
  const p = await sb.spawn("true");
  const status = await p.status;
  const t2 = now();
  if (!status.success) throw new Error(`true failed in a new sandbox: ${JSON.stringify(status)}`);
  return { sb, total: t2 - t0, create: t1 - t0, firstSpawn: t2 - t1 };
}

async function sdkTrue(sb, stdio) {
  const t0 = now();
  const p = await sb.spawn("true", stdio === "null" ? { stdout: "null", stderr: "null" } : {});
  const status = await p.status;
  if (!status.success) throw new Error(`true failed: ${JSON.stringify(status)}`);
  return now() - t0;
}

async function drain(stream) {
  let n = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return n;
    n += value.byteLength;
  }
}

async function sdkStdout(sb, bytes) {
  const t0 = now();
  const p = await sb.spawn("head", { args: ["-c", String(bytes), "/dev/zero"], stderr: "null" });
  const n = await drain(p.stdout);
  await p.status;
  const t = now() - t0;
  if (n !== bytes) throw new Error(`stdout carried ${n} of ${bytes} bytes`);
  return bytes / 1e6 / (t / 1000);
}

function generated(bytes) {
  const chunk = new Uint8Array(MiB).fill(97);
  let left = bytes;
  return new ReadableStream({
    pull(c) {
      if (left <= 0) return c.close();
      const n = Math.min(left, chunk.length);
      left -= n;
      c.enqueue(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

async function sdkUpload(sb, path, bytes) {
  const t0 = now();
  await sb.fs.writeFile(path, generated(bytes));
  const t = now() - t0;
  const size = (await sb.fs.stat(path)).size;
  if (size !== bytes) throw new Error(`uploaded file has ${size} of ${bytes} bytes`);
  return bytes / 1e6 / (t / 1000);
}

/**
 * Reads the file through `fs.readFileStream`. A stream that aborts part way still gives a rate
 * over the bytes that did arrive, and says why it aborted.
 */
async function sdkDownload(sb, path, bytes) {
  const t0 = now();
  const reader = (await sb.fs.readFileStream(path)).getReader();
  let n = 0;
  let error = null;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.byteLength;
    }
  } catch (err) {
    error = err.message;
  }
  const t = now() - t0;
  if (!error && n !== bytes) error = `ended after ${n} of ${bytes} bytes`;
  return { rate: n / 1e6 / (t / 1000), bytes: n, error };
}

function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms / 1000} s (hung)`)), ms))),
  ]);
}

/** RSS and PSS of each sandbox's processes, grouped by host uid (one uid per sandbox). */
function perSandboxMemory() {
  const byUid = new Map();
  for (const p of sandboxProcs()) {
    const e = byUid.get(p.uid) ?? { rssKb: 0, pssKb: 0, procs: [] };
    e.rssKb += p.rssKb;
    e.pssKb += pssKb(p.pid);
    e.procs.push(`${p.name}:${(p.rssKb / 1024).toFixed(1)}`);
    byUid.set(p.uid, e);
  }
  return [...byUid.values()];
}

// ---------------------------------------------------------------- warm pool (row 1e)

/**
 * `Sandbox.create()` + first `spawn("true")` against a daemon with its default warm pool. Before
 * each sample the pool is given time to refill: the killed sandbox is gone, `size` supervisors of
 * unowned sandboxes run, nothing else runs in them (the refill's throwaway `true` is done), and
 * 250 ms more pass for the daemon to put the last one in the pool.
 */
async function measureWarmPool() {
  const dp = await startDaemon({ uidBase: POOL_UID_BASE, warmPool: null, quiet: false });
  const size = daemonModule.defaultConfig().warmPool;
  const inRange = () => sandboxProcs().filter((p) => p.uid >= POOL_UID_BASE && p.uid < FLOOR_UID);
  const refilled = async () => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const ps = inRange();
      const uids = new Set(ps.map((p) => p.uid));
      const supervisors = new Set(ps.filter((p) => p.name === "node").map((p) => p.uid));
      if (uids.size === size && supervisors.size === size && ps.every((p) => p.name === "node" || p.name === "bwrap")) break;
      if (Date.now() > deadline) throw new Error(`the warm pool did not refill to ${size} in 15 s: ${JSON.stringify(ps)}`);
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
    const total = [], create = [], firstSpawn = [];
    for (let i = 0; i < CFG.warmN; i++) {
      await refilled();
      const r = await sdkColdStart(dp);
      total.push(r.total), create.push(r.create), firstSpawn.push(r.firstSpawn);
      await r.sb.kill();
    }
    await sleep(100); // the last create's log line
    const after = countStarts();
    // diagnostic: the first spawn once the refill behind the create has finished
    const settled = [];
    for (let i = 0; i < Math.ceil(CFG.warmN / 2); i++) {
      await refilled();
      const sb = await Sandbox.create(dp.opts);
      await refilled();
      settled.push(await sdkTrue(sb, "piped"));
      await sb.kill();
    }
    return {
      size, total: stats(total), create: stats(create), firstSpawn: stats(firstSpawn), settled: stats(settled),
      starts: after.starts - before.starts, fromPool: after.fromPool - before.fromPool,
    };
  } finally {
    await dp.stop();
    const deadline = Date.now() + 10_000;
    while (inRange().length > 0 && Date.now() < deadline) await sleep(10);
  }
}

// ---------------------------------------------------------------- hardening on vs off (rows 6)

/** Runs inside a sandbox (or on the host): `child_process.spawn('/bin/true')` round trips, as JSON. */
const RTT_SCRIPT = `const { spawn } = require("child_process");
const one = () => new Promise((resolve, reject) => {
  const t0 = performance.now();
  const c = spawn("/bin/true", [], { stdio: "pipe" });
  c.once("error", reject);
  c.once("exit", () => resolve(performance.now() - t0));
});
(async () => {
  const n = Number(process.argv[1]);
  for (let i = 0; i < 20; i++) await one();
  const xs = [];
  for (let i = 0; i < n; i++) xs.push(await one());
  process.stdout.write(JSON.stringify(xs));
})();`;

/**
 * The captured launch replayed four ways, interleaved: hardening off (no seccomp, no cgroups,
 * bwrap started as the host uid through node's uid option), seccomp only, the root-mode wrapper
 * only (fresh cgroups with the daemon's limits joined by the daemon's own `sh` script, its
 * oom_score_adj, `prlimit`, `setpriv`) and both (= what the daemon runs).
 */
async function measureHardening(capture) {
  const h = capture.hardening;
  joinScript();
  if (!h.cgroupValues) throw new Error("the captured sandbox sits in no cgroup of its own: is the daemon in root mode with cgroups?");
  if (!capture.args.includes("--seccomp")) throw new Error("the captured bwrap argv has no --seccomp");
  const uid = FLOOR_UID;
  const plain = withoutSeccomp(capture);
  const variants = {
    off: { cap: plain, cg: false },
    seccomp: { cap: capture, cg: false },
    wrap: { cap: plain, cg: true },
    on: { cap: capture, cg: true },
  };
  const order = Object.keys(variants);
  const cgSetup = [], cgRemove = [];
  /** CFS throttling seen in each sample's cgroup: [samples throttled, samples, total throttled ms]. */
  const throttled = {};
  const throttleCheck = (k, phase) => (cg) => {
    const cpu = cg.made.find((dir) => dir.includes("/cpu/"));
    const stat = readFileSync(join(cpu, "cpu.stat"), "utf8");
    const n = Number(/^nr_throttled (\d+)/m.exec(stat)?.[1] ?? 0);
    const ns = Number(/^throttled_time (\d+)/m.exec(stat)?.[1] ?? 0);
    const e = (throttled[`${k}.${phase}`] ??= [0, 0, 0]);
    e[0] += n > 0 ? 1 : 0;
    e[1] += 1;
    e[2] += ns / 1e6;
  };
  let cgN = 0;
  const run = async (v, fn, check = null) => {
    if (!v.cg) return fn(v.cap);
    const t0 = now();
    const cg = makeBenchCgroup(cgN++, h.cgroupValues);
    cgSetup.push(now() - t0);
    try {
      const r = await fn({ ...v.cap, prefix: hardenedPrefix(capture, uid, cg.procsFiles) });
      check?.(cg);
      return r;
    } finally {
      const t1 = now();
      await removeBenchCgroup(cg);
      cgRemove.push(now() - t1);
    }
  };
  try {
    // each variant really is what it claims to be
    const probe = ["/bin/sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -s '\\t\\n' '  '; ulimit -n; cat /proc/self/oom_score_adj"];
    const seen = {};
    for (const k of order) {
      let charged = null;
      const { out } = await run(variants[k], (c) => rawBwrapRun(c, uid, probe), (cg) => {
        const mem = cg.made.find((dir) => dir.includes("/memory/"));
        charged = Number(readFileSync(join(mem, "memory.max_usage_in_bytes"), "utf8"));
      });
      seen[k] = out.trim().replace(/\s+/g, " ") + (charged !== null ? `; cgroup peak ${(charged / MiB).toFixed(1)} MiB` : "");
      const filtered = /Seccomp: 2/.test(out);
      if (filtered !== (k === "seccomp" || k === "on")) throw new Error(`hardening variant ${k}: unexpected seccomp state: ${out}`);
      if (variants[k].cg && !(charged > 0)) throw new Error(`hardening variant ${k}: nothing was charged to its cgroup`);
    }
    log(`   variants: ${JSON.stringify(seen)}`);
    const S = Object.fromEntries(order.map((k) => [k, { sup: [], tru: [], rtt: [] }]));
    const rotated = (i) => order.map((_, j) => order[(i + j) % order.length]);
    for (const k of order) {
      await run(variants[k], (c) => rawSupervisorStart(c, uid));
      await run(variants[k], (c) => rawBwrapTrue(c, uid));
    }
    for (let i = 0; i < CFG.hardN; i++) {
      for (const k of rotated(i)) {
        S[k].sup.push(await run(variants[k], (c) => rawSupervisorStart(c, uid), throttleCheck(k, "sup")));
        S[k].tru.push(await run(variants[k], (c) => rawBwrapTrue(c, uid), throttleCheck(k, "tru")));
      }
    }
    const host = [];
    const rttArgv = ["/.sbx/node", "-e", RTT_SCRIPT, String(CFG.hardRttN)];
    for (let i = 0; i < CFG.hardRttReps; i++) {
      for (const k of rotated(i)) {
        const { out } = await run(variants[k], (c) => rawBwrapRun(c, uid, rttArgv));
        S[k].rtt.push(...JSON.parse(out));
      }
      host.push(...JSON.parse(execFileSync(process.execPath, ["-e", RTT_SCRIPT, String(CFG.hardRttN)], { encoding: "utf8" })));
    }
    const out = { seen, throttled, cgSetup: stats(cgSetup), cgRemove: stats(cgRemove), host: { rtt: stats(host) } };
    for (const k of order) out[k] = { sup: stats(S[k].sup), tru: stats(S[k].tru), rtt: stats(S[k].rtt) };
    return out;
  } finally {
    removeBenchCgroupBases();
  }
}

const memAvailableMb = () => Number(/^MemAvailable:\s+(\d+)/m.exec(readFileSync("/proc/meminfo", "utf8"))[1]) / 1024;

/** memory.usage_in_bytes (v1) or memory.current (v2) of each sandbox cgroup of one daemon. */
function cgroupCharges(name) {
  for (const [base, file] of [[join("/sys/fs/cgroup/memory", name), "memory.usage_in_bytes"], [join("/sys/fs/cgroup", name), "memory.current"]]) {
    if (!existsSync(base)) continue;
    return readdirSync(base, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => Number(readFileSync(join(base, e.name, file), "utf8")));
  }
  return [];
}

// ---------------------------------------------------------------- main

function machine() {
  let bwrapVersion = "?";
  try {
    bwrapVersion = execFileSync("bwrap", ["--version"], { encoding: "utf8" }).trim();
  } catch {}
  let bufferutil = "absent";
  try {
    requireFromClient.resolve("bufferutil");
    createRequire(requireFromClient.resolve("ws"))("bufferutil");
    bufferutil = "loaded";
  } catch {}
  let code = ROOT;
  try {
    const git = (...a) => execFileSync("git", ["-C", ROOT, ...a], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const dirty = git("status", "--porcelain", "--", "packages").split("\n").filter(Boolean).length;
    code = `${ROOT} at commit ${git("rev-parse", "--short", "HEAD")}${dirty ? ` with ${dirty} uncommitted changes under packages/` : ""}`;
  } catch {}
  if (process.env.BENCH_LABEL) code += ` (${process.env.BENCH_LABEL})`;
  return {
    code,
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? "?",
    memGiB: (totalmem() / 1024 ** 3).toFixed(1),
    node: process.version,
    bwrap: bwrapVersion,
    kernel: release(),
    bufferutil,
    loadStart: loadavg()[0].toFixed(2),
  };
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error("run as root: sandboxes and the floors run as host uids 200000+");
  const started = Date.now();
  const m = machine();
  log(`machine: ${JSON.stringify(m)}${QUICK ? " (QUICK)" : ""}`);
  await waitNoSandboxProcs(null, 2000).catch(() => {
    throw new Error(`processes already run as uids ${UID_LO}..${UID_HI}: stop whatever runs them first`);
  });
  // the daemon for everything but row 1e runs with its warm pool off: every create is cold
  const d = await startDaemon({ warmPool: 0 });
  log(`daemon pid ${d.proc.pid} at ${d.url} (warm pool off)`);
  const peer = await startWsPeer();
  const R = {};
  let capture;
  try {
    // ---- 1. cold create → first spawn, vs raw bwrap + supervisor
    log("1. cold start (warm pool off)");
    {
      const first = await sdkColdStart(d); // warm-up; also captures the exact bwrap argv
      capture = captureSandbox(d.proc.pid);
      R.hardening = capture.hardening;
      R.bwrapArgc = capture.argc;
      R.omitted = capture.omitted;
      await first.sb.kill();
      await waitNoSandboxProcs();
      for (let i = 0; i < 2; i++) {
        await rawSupervisorStart(capture, FLOOR_UID);
        await rawBwrapTrue(capture, FLOOR_UID);
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
        sup.push(await rawSupervisorStart(capture, FLOOR_UID));
        T.push(now());
        bt.push(await rawBwrapTrue(capture, FLOOR_UID));
        T.push(now());
        bnode.push(await rawBwrapTrue(capture, FLOOR_UID, ["/.sbx/node", "-e", "0"]));
        if (process.env.BENCH_TRACE) log("cold iteration", T.slice(1).map((t, k) => (t - T[k]).toFixed(1)).join(" "));
      }
      R.cold = { total: stats(total), create: stats(create), firstSpawn: stats(firstSpawn), sup: stats(sup), bwrapTrue: stats(bt), bwrapNode: stats(bnode) };
      log(`   sdk ${ms(R.cold.total)}; floor bwrap+supervisor ${ms(R.cold.sup)}; bwrap true ${ms(R.cold.bwrapTrue)}; bwrap node -e 0 ${ms(R.cold.bwrapNode)}`);
    }

    // ---- 1e. the same from a warm pool: a second daemon with its default pool
    log("1e. create + first spawn from the warm pool");
    R.warm = await measureWarmPool();
    log(`   sdk ${ms(R.warm.total)} (create ${ms(R.warm.create)}, first spawn ${ms(R.warm.firstSpawn)}); ${R.warm.fromPool} of ${R.warm.starts} creates taken from the pool`);

    // ---- 6. hardening on vs off, raw replay of the captured launch
    log("6. hardening on vs off");
    R.hard = await measureHardening(capture);
    {
      const h = R.hard;
      log(`   start ${ms(h.on.sup)} vs ${ms(h.off.sup)}; bwrap true ${ms(h.on.tru)} vs ${ms(h.off.tru)}; spawn rtt ${ms(h.on.rtt)} vs ${ms(h.off.rtt)} (host ${ms(h.host.rtt)})`);
    }

    // ---- 2. spawn("true") round trip in a live sandbox, vs local child_process.spawn
    log("2. spawn round trip");
    {
      const sb = await Sandbox.create(d.opts);
      for (let i = 0; i < 30; i++) await sdkTrue(sb, "piped"), await localTrue("pipe");
      const piped = [], nul = [], localPipe = [], localIgnore = [];
      for (let i = 0; i < CFG.rttN; i++) {
        piped.push(await sdkTrue(sb, "piped"));
        localPipe.push(await localTrue("pipe"));
        nul.push(await sdkTrue(sb, "null"));
        localIgnore.push(await localTrue("ignore"));
      }
      R.rtt = { piped: stats(piped), nul: stats(nul), localPipe: stats(localPipe), localIgnore: stats(localIgnore) };
      log(`   sdk ${ms(R.rtt.piped)}; local ${ms(R.rtt.localPipe)}`);

      // ---- 3. stdout throughput, vs raw ws server→client
      log("3. stdout throughput");
      await sdkStdout(sb, 64 * MiB);
      await peer.download(64 * MiB, 64 * 1024);
      const sdk = [], floor = [];
      let clientGrowth = 0, daemonGrowth = 0;
      for (let i = 0; i < CFG.reps; i++) {
        const r = await withRssPeak(d.proc.pid, () => sdkStdout(sb, CFG.stdoutBytes));
        sdk.push(r.result);
        clientGrowth = Math.max(clientGrowth, r.clientGrowth);
        daemonGrowth = Math.max(daemonGrowth, r.daemonGrowth);
        floor.push(await peer.download(CFG.stdoutBytes, 64 * 1024));
      }
      R.stdout = { sdk: tput(sdk), floor: tput(floor), clientGrowth, daemonGrowth };
      log(`   sdk ${mbs(R.stdout.sdk)}; ws ${mbs(R.stdout.floor)}; client +${mb(clientGrowth)}, daemon +${mb(daemonGrowth)}`);

      // ---- 4. file upload / download, vs raw ws client→server (masked) / server→client
      log("4. file upload/download");
      const path = "/home/user/bench.bin";
      const limitMs = 120_000;
      let box = sb;
      const replace = async (why) => {
        log(`   replacing the sandbox: ${why}`);
        await box.kill().catch(() => {});
        box = await Sandbox.create(d.opts);
      };
      const up = [], down = [], upFloor = [], downFloor = [];
      const failed = { up: [], down: [] };
      const growth = { upClient: 0, upDaemon: 0, downClient: 0, downDaemon: 0 };
      // rep -1 is a 64 MiB warm-up, not recorded
      for (let i = -1; i < CFG.reps; i++) {
        const size = i < 0 ? 64 * MiB : CFG.fileBytes;
        upFloor.push(await peer.upload(size, 64 * 1024));
        try {
          const u = await withRssPeak(d.proc.pid, () => within(sdkUpload(box, path, size), limitMs, "fs.writeFile"));
          if (i >= 0) {
            up.push(u.result);
            growth.upClient = Math.max(growth.upClient, u.clientGrowth);
            growth.upDaemon = Math.max(growth.upDaemon, u.daemonGrowth);
          }
        } catch (err) {
          if (i >= 0) failed.up.push(err.message);
          log(`   upload failed: ${err.message}`);
          await replace("after a failed upload");
          continue;
        }
        downFloor.push(await peer.download(size, 64 * 1024));
        const dl = await withRssPeak(d.proc.pid, () => within(sdkDownload(box, path, size), limitMs, "fs.readFileStream"));
        if (i >= 0) {
          down.push(dl.result.rate);
          growth.downClient = Math.max(growth.downClient, dl.clientGrowth);
          growth.downDaemon = Math.max(growth.downDaemon, dl.daemonGrowth);
          if (dl.result.error) failed.down.push(`${dl.result.error} (after ${(dl.result.bytes / MiB).toFixed(0)} MiB)`);
        }
        if (dl.result.error) {
          log(`   download aborted after ${(dl.result.bytes / MiB).toFixed(0)} MiB: ${dl.result.error}`);
          const alive = await box.fs.stat(path).then(() => true, () => false);
          if (!alive) await replace("the sandbox died during the download");
        }
      }
      upFloor.shift();
      downFloor.shift();
      await box.fs.remove(path).catch(() => {});
      R.files = { up: tput(up), down: tput(down), upFloor: tput(upFloor), downFloor: tput(downFloor), growth, failed };
      log(`   up ${mbs(R.files.up)} vs ${mbs(R.files.upFloor)}; down ${mbs(R.files.down)} vs ${mbs(R.files.downFloor)}; failures ${JSON.stringify(failed)}`);
      await box.kill().catch(() => {});
      if (box !== sb) await sb.kill().catch(() => {});
      await waitNoSandboxProcs();
    }

    // ---- 5. idle memory per sandbox, vs raw bwrap + supervisor with the same argv
    log(`5. idle memory, ${CFG.idleN} sandboxes`);
    {
      gc();
      await sleep(1000);
      const daemonBefore = rssMb(d.proc.pid);
      const availBefore = memAvailableMb();
      const sbs = [];
      const t0 = now();
      for (let i = 0; i < CFG.idleN; i++) sbs.push(await Sandbox.create(d.opts));
      const createSeconds = (now() - t0) / 1000;
      await sleep(2000);
      const fresh = perSandboxMemory();
      const daemonAfter = rssMb(d.proc.pid);
      const availAfter = memAvailableMb();
      const charged = cgroupCharges(d.cgroupName);
      for (const sb of sbs) await sdkTrue(sb, "piped");
      await sleep(1500);
      const used = perSandboxMemory();
      const daemonUsed = rssMb(d.proc.pid);
      const availUsed = memAvailableMb();
      if (fresh.length !== CFG.idleN || used.length !== CFG.idleN) throw new Error(`expected ${CFG.idleN} sandboxes, saw ${fresh.length} / ${used.length}`);
      if (charged.length !== CFG.idleN) throw new Error(`expected ${CFG.idleN} sandbox memory cgroups under ${d.cgroupName}, saw ${charged.length}`);
      const capture = captureSandbox(d.proc.pid);
      for (const sb of sbs) await sb.kill();
      await waitNoSandboxProcs(null, 60_000);
      await sleep(1500);
      const availEnd = memAvailableMb();
      // floor: the same bwrap argv and supervisor, started directly, left idle
      const floors = [];
      for (let i = 0; i < CFG.floorIdleN; i++) {
        const c = spawnRawBwrap(capture, FLOOR_UID + i);
        await new Promise((r) => c.stdout.once("data", r));
        floors.push(c);
      }
      await sleep(1500);
      const floorMem = perSandboxMemory();
      for (const c of floors) c.kill("SIGKILL");
      // and bwrap (same argv) holding only `sleep`
      for (let i = 0; i < CFG.floorIdleN; i++) await waitNoSandboxProcs(FLOOR_UID + i);
      const sleepers = [];
      for (let i = 0; i < CFG.floorIdleN; i++) sleepers.push(spawnRawBwrap(withCommand(capture, ["/usr/bin/sleep", "60"]), FLOOR_UID + i));
      await sleep(1000);
      const sleepMem = perSandboxMemory();
      for (const c of sleepers) c.kill("SIGKILL");
      for (let i = 0; i < CFG.floorIdleN; i++) await waitNoSandboxProcs(FLOOR_UID + i);
      const avg = (list, k) => list.reduce((a, e) => a + e[k], 0) / list.length / 1024;
      R.idle = {
        n: CFG.idleN,
        freshRss: avg(fresh, "rssKb"), freshPss: avg(fresh, "pssKb"),
        usedRss: avg(used, "rssKb"), usedPss: avg(used, "pssKb"),
        floorRss: avg(floorMem, "rssKb"), floorPss: avg(floorMem, "pssKb"), floorN: floorMem.length,
        sleepRss: avg(sleepMem, "rssKb"), sleepPss: avg(sleepMem, "pssKb"),
        daemonGrowth: daemonAfter - daemonBefore, daemonGrowthUsed: daemonUsed - daemonBefore,
        availDrop: availBefore - availAfter, availDropUsed: availBefore - availUsed, availDrift: availBefore - availEnd,
        cgroupCharge: charged.reduce((a, b) => a + b, 0) / charged.length / MiB,
        createSeconds,
        memTotalMb: totalmem() / MiB,
        procs: used[0].procs.join(", "),
      };
      log(`   per sandbox RSS ${mb(R.idle.usedRss)} (PSS ${mb(R.idle.usedPss)}); floor ${mb(R.idle.floorRss)}; daemon ${sgn(R.idle.daemonGrowthUsed)}; MemAvailable ${sgn(-R.idle.availDropUsed / CFG.idleN)} per sandbox; cgroup charge ${mb(R.idle.cgroupCharge)}`);
    }
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
  const md = `${report(m, R)}
## Egress proxy

From \`bench/egress.mjs\`: one client (\`bench/egress-client.mjs\`) makes sequential GETs to a local
upstream directly, through a minimal Node CONNECT proxy (the floor of a proxy hop; HTTPS only),
and from inside a sandbox through sbx's proxy (upstream reached by name via \`--resolve\`).
Targets: tunnel ≤ 1.2× a minimal CONNECT proxy; intercepted HTTPS with secret substitution,
keep-alive, ≤ +0.3 ms per request over direct.

${egress}
`;
  process.stdout.write(md);
  if (QUICK) log(`done in ${R.seconds.toFixed(0)} s (quick run: bench/RESULTS.md left as it was)`);
  else {
    writeFileSync(join(BENCH, "RESULTS.md"), md);
    log(`done in ${R.seconds.toFixed(0)} s; wrote bench/RESULTS.md`);
  }
}

function throttleText(t, k) {
  const one = (phase) => {
    const [hit, n, total] = t[`${k}.${phase}`] ?? [0, 0, 0];
    return `${hit} of ${n}${hit ? ` (${f1(total / hit)} ms each)` : ""}`;
  };
  return `${one("sup")} / ${one("tru")}`;
}

function report(m, R) {
  const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
  const pct = (a, b) => `${((a / b) * 100).toFixed(0)} %`;
  const ok = (cond) => (cond ? "yes" : "**no**");
  const c = R.cold, w = R.warm, t = R.rtt, s = R.stdout, fl = R.files, i = R.idle, h = R.hard;
  const perSb = (x) => `${(x / i.n).toFixed(1)} MB`;
  const onOff = (k, label) => `${label}: ${ms(h.seccomp[k])} seccomp only; ${ms(h.wrap[k])} cgroups + prlimit + setpriv only`;
  const GiBof = (b) => (b >= 1024 * MiB ? `${b / (1024 * MiB)} GiB` : `${b / MiB} MiB`);
  const rows = [
    ["1", "`Sandbox.create()` → first `spawn(\"true\")` finished, cold (daemon with `warmPool: 0`)", ms(c.total), `bwrap (same argv) + supervisor to its first frame: ${ms(c.sup)}`, ratio(c.total.median, c.sup.median), "≤ 60 ms and ≤ 1.5× floor", `60 ms: ${ok(c.total.median <= 60)}; 1.5×: ${ok(c.total.median <= 1.5 * c.sup.median)}`],
    ["1a", "… of which `Sandbox.create()` (connect + create)", ms(c.create), ms(c.sup), ratio(c.create.median, c.sup.median), "", ""],
    ["1b", "… of which the first `spawn(\"true\")`", ms(c.firstSpawn), `warm spawn (row 2): ${ms(t.piped)}`, ratio(c.firstSpawn.median, t.piped.median), "", ""],
    ["1c", "bare bwrap, same argv, `/usr/bin/true`", "", ms(c.bwrapTrue), "", "(anchor 7.1 ms)", ""],
    ["1d", "bare bwrap, same argv, `node -e 0` (the daemon's node binary)", "", ms(c.bwrapNode), "", "(anchor 42.4 ms)", ""],
    ["1i", "… `Sandbox.create()` beyond the hardened launch: median of 1a minus median of 6 (on)", `${f1(c.create.median - h.on.sup.median)} ms`, `(6 on: ${f1(h.on.sup.median)} ms)`, "", "", ""],
    ["1e", `same from a warm pool (create + first spawn; a second daemon, default pool of ${w.size}; ${w.fromPool} of ${w.starts} creates taken from it)`, ms(w.total), `cold (row 1): ${ms(c.total)}`, ratio(w.total.median, c.total.median), "≤ 10 ms", ok(w.total.median <= 10 && w.fromPool === w.starts)],
    ["1f", "… of which `Sandbox.create()` (connect + create)", ms(w.create), "", "", "", ""],
    ["1g", "… of which the first `spawn(\"true\")`", ms(w.firstSpawn), `warm spawn (row 2): ${ms(t.piped)}`, ratio(w.firstSpawn.median, t.piped.median), "", ""],
    ["1h", "… diagnostic: that first spawn when started after the pool's refill has finished", ms(w.settled), `warm spawn (row 2): ${ms(t.piped)}`, ratio(w.settled.median, t.piped.median), "", ""],
    ["2", "`spawn(\"true\")` round trip, live sandbox (stdout/stderr piped)", ms(t.piped), `local \`child_process.spawn('/bin/true')\`, piped: ${ms(t.localPipe)}`, ratio(t.piped.median, t.localPipe.median), "≤ 2×", ok(t.piped.median <= 2 * t.localPipe.median)],
    ["2a", "… with stdout/stderr `\"null\"`", ms(t.nul), `local, stdio ignore: ${ms(t.localIgnore)}`, ratio(t.nul.median, t.localIgnore.median), "≤ 2×", ok(t.nul.median <= 2 * t.localIgnore.median)],
    ["3", `process stdout, \`head -c ${GiBof(CFG.stdoutBytes)} /dev/zero\``, mbs(s.sdk), `raw \`ws\` server→client, 64 KiB frames: ${mbs(s.floor)}`, pct(s.sdk.median, s.floor.median), "≥ 50 %", ok(s.sdk.median >= 0.5 * s.floor.median)],
    ["3a", `… peak RSS growth while reading ${GiBof(CFG.stdoutBytes)}: client / daemon`, `${mb(s.clientGrowth)} / ${mb(s.daemonGrowth)}`, "", "", "≤ 64 MB per GiB", ok(s.clientGrowth <= 64 && s.daemonGrowth <= 64)],
    ["4", `file upload, ${GiBof(CFG.fileBytes)} (\`fs.writeFile\` from a ReadableStream)`, mbs(fl.up) + (fl.failed.up.length ? `; **${fl.failed.up.length} of ${CFG.reps} failed**: ${fl.failed.up[0]}` : ""), `raw \`ws\` client→server (masked), 64 KiB frames: ${mbs(fl.upFloor)}`, pct(fl.up.median, fl.upFloor.median), "≥ 50 %", ok(fl.up.median >= 0.5 * fl.upFloor.median)],
    ["4a", `file download, ${GiBof(CFG.fileBytes)} (\`fs.readFileStream\`)`, fl.failed.down.length ? `${mbs(fl.down)} over the bytes that arrived; **${fl.failed.down.length} of ${fl.down.n} aborted**: ${fl.failed.down.join("; ")}` : mbs(fl.down), `raw \`ws\` server→client, 64 KiB frames: ${mbs(fl.downFloor)}`, pct(fl.down.median, fl.downFloor.median), "≥ 50 %", ok(fl.down.median >= 0.5 * fl.downFloor.median)],
    ["4b", "… peak RSS growth, upload: client / daemon", `${mb(fl.growth.upClient)} / ${mb(fl.growth.upDaemon)}`, "", "", "≤ 64 MB per GiB", ok(fl.growth.upClient <= 64 && fl.growth.upDaemon <= 64)],
    ["4c", "… peak RSS growth, download: client / daemon", `${mb(fl.growth.downClient)} / ${mb(fl.growth.downDaemon)}`, "", "", "≤ 64 MB per GiB", ok(fl.growth.downClient <= 64 && fl.growth.downDaemon <= 64)],
    ["5", `idle RSS per sandbox (bwrap + supervisor, ${i.n} live, after one \`true\` each)`, mb(i.usedRss), `raw bwrap (same argv) + idle supervisor: ${mb(i.floorRss)}`, ratio(i.usedRss, i.floorRss), "≤ 45 MB", ok(i.usedRss <= 45)],
    ["5a", "… freshly created (no spawn yet)", mb(i.freshRss), "", ratio(i.freshRss, i.floorRss), "≤ 45 MB", ok(i.freshRss <= 45)],
    ["5b", "… PSS (shared pages split) after one `true` / fresh", `${mb(i.usedPss)} / ${mb(i.freshPss)}`, `raw: ${mb(i.floorPss)}`, ratio(i.usedPss, i.floorPss), "", ""],
    ["5c", "bwrap (same argv) holding only `sleep`", "", `${mb(i.sleepRss)} RSS, ${mb(i.sleepPss)} PSS`, "", "(anchor 5.3 MB)", ""],
    ["5d", `daemon RSS growth with ${i.n} sandboxes: total / per sandbox (after one \`true\` each)`, `${sgn(i.daemonGrowthUsed)} / ${(i.daemonGrowthUsed / i.n).toFixed(2)} MB`, `fresh: ${sgn(i.daemonGrowth)}`, "", "", ""],
    ["5e", `host MemAvailable drop per sandbox, ${i.n} live (after one \`true\` each / fresh)`, `${perSb(i.availDropUsed)} / ${perSb(i.availDrop)}`, "", "", `200 sandboxes on a 24 GiB host: ${((200 * i.availDropUsed) / i.n / 1024).toFixed(1)} GiB of ${(i.memTotalMb / 1024).toFixed(1)}`, ok((200 * i.availDropUsed) / i.n < i.memTotalMb * 0.8)],
    ["5f", "… the kernel's charge to each sandbox's memory cgroup (fresh)", mb(i.cgroupCharge), "", "", "", ""],
    ["6", "sandbox start, hardening **on** vs off: bwrap + supervisor to its first frame", ms(h.on.sup), `off (no seccomp, no cgroups/prlimit/setpriv): ${ms(h.off.sup)}`, ratio(h.on.sup.median, h.off.sup.median), "", ""],
    ["6a", "… same argv running `/usr/bin/true`, until bwrap exits", ms(h.on.tru), `off: ${ms(h.off.tru)}`, ratio(h.on.tru.median, h.off.tru.median), "", ""],
    ["6b", `\`true\` round trip inside the sandbox (node \`child_process.spawn('/bin/true')\`, ${CFG.hardRttReps}×${CFG.hardRttN})`, ms(h.on.rtt), `off: ${ms(h.off.rtt)}; on the host, outside any sandbox: ${ms(h.host.rtt)}`, ratio(h.on.rtt.median, h.off.rtt.median), "", ""],
    ["6c", "… decomposition of 6 / 6a / 6b", "", `${onOff("sup", "6")}. ${onOff("tru", "6a")}. ${onOff("rtt", "6b")}`, `${ratio(h.seccomp.sup.median, h.off.sup.median)} / ${ratio(h.wrap.sup.median, h.off.sup.median)} (6)`, "", ""],
    ["6d", "cgroup setup (mkdir × 4 + 5 limit writes) / removal per sandbox, not in 6–6b", `${ms(h.cgSetup)} / ${ms(h.cgRemove)}`, "", "", "", ""],
    ["6e", "… samples of 6 / 6a throttled by the CPU quota (`cpu.stat` nr_throttled > 0), on", throttleText(h.throttled, "on"), `cgroups + prlimit + setpriv only: ${throttleText(h.throttled, "wrap")}`, "", "", ""],
  ];
  const esc = (x) => String(x).replace(/\|/g, "\\|");
  const table = [
    "| # | metric | sbx | floor (same run) | ratio sbx/floor | target | met |",
    "|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
  return `# sbx benchmark results

Generated by \`node bench/run.mjs\` (\`pnpm bench\`) on ${new Date().toISOString()}${QUICK ? " — **QUICK smoke run, not representative**" : ""}; the whole run took ${R.seconds.toFixed(0)} s.

Code measured: ${m.code} (its built \`dist/\`).

Machine: ${m.nproc} cores (${m.cpu}), ${m.memGiB} GiB RAM, Node ${m.node}, ${m.bwrap}, kernel ${m.kernel}; \`ws\` bufferutil addon ${m.bufferutil}. Daemons in root mode (one host uid per sandbox, from ${DAEMON_UID_BASE}; the warm-pool daemon of row 1e from ${POOL_UID_BASE}), state dirs in ${tmpdir()}. 1-minute load average ${m.loadStart} at the start, ${R.loadEnd} at the end (other work on the machine makes every figure noisier).

Medians with p90 (for throughputs, the 10th percentile — the slow tail) over n samples; floors are measured in the same run, interleaved with the sbx samples. Targets from \`shared/TARGETS.md\`.

${table}

How each figure is taken:
- **1** one \`Sandbox.create()\` (a new WebSocket connection + \`sandbox.create\`) then \`spawn("true")\` until its exit status arrives, then \`kill()\` and wait until no sandbox-uid process is left. The floor replays the bwrap argv the daemon really used (${R.bwrapArgc} arguments, read from \`/proc/<bwrap>/cmdline\` of a live sandbox) with the same fd layout (/etc data pipes, \`--ro-bind-fd\` of the node binary and \`dist/supervisor.mjs\`, a plain directory of its own for any \`--bind-fd\`)${R.omitted.length ? `, **without** ${R.omitted.map((o) => `\`${o}\``).join(", ")} (not recoverable from a live sandbox)` : ""} as the same kind of host uid, and times until the supervisor's first stdout byte (its "ready" frame, which is what the daemon waits for). 1c and 1d replace the supervisor command with \`/usr/bin/true\` and \`/.sbx/node -e 0\` and time until bwrap exits. 1i is what \`Sandbox.create()\` adds on top of the daemon's full launch as replayed in row 6 (on): the WebSocket connection, the sandbox's storage, cgroup and record, the handshake.
- **1e** a second daemon (its own state dir and uid range) with the default \`warmPool\` (${w.size}); the same \`Sandbox.create()\` + first \`spawn("true")\` + \`kill()\`. Before each sample the pool is left to refill: the killed sandbox's processes are gone, ${w.size} unowned sandboxes' supervisors run with nothing else in them (the refill's throwaway \`true\` is done), then 250 ms more. The daemon's log says which creates were served from the pool. 1h (diagnostic, ${w.settled.n} samples): create from the pool, wait until the pool has refilled, then time the first \`spawn("true")\`. Rows 1–1d, 2–5 use a daemon with \`"warmPool": 0\` in its config file.
- **2** \`spawn("true")\` + await \`status\` in one live sandbox (after 30 warm-up spawns), interleaved with \`child_process.spawn('/bin/true')\` until \`exit\` in this process.
- **3** \`spawn("head", ["-c", N, "/dev/zero"])\`, stdout read through the Web ReadableStream until it ends, plus the exit status. Floor: a separate \`ws\` server process sends the same bytes in 64 KiB binary frames to a \`ws\` client in this process. RSS growth is peak minus the value just before (after a GC), sampled every 20 ms.
- **4** \`fs.writeFile(path, ReadableStream)\` of generated 1 MiB chunks into /home/user (the sandbox's own storage mount), then \`fs.readFileStream\` of the same file, read to its end. Floors: the same \`ws\` pair, client→server (masked) and server→client.
- **5** ${i.n} sandboxes, each from its own \`Sandbox.create()\` (${i.createSeconds.toFixed(1)} s for all of them, one after the other); VmRSS (and PSS from smaps_rollup) of every process running as that sandbox's host uid, summed per sandbox and averaged over the sandboxes. Processes of one sandbox: ${i.procs} (MB). 5d: the daemon's VmRSS before and with the sandboxes. 5e: /proc/meminfo MemAvailable before the first create and with all of them alive (2 s after the last create / 1.5 s after each ran \`true\`), divided by ${i.n} (other work on the host moves this figure too: MemAvailable 1.5 s after the last sandbox was gone was ${sgn(-i.availDrift)} from the start). 5f: mean \`memory.usage_in_bytes\` of the sandboxes' memory cgroups (page cache and kernel memory the sandbox first touched, e.g. its storage's cache). Floor: the same bwrap argv + supervisor started directly (${i.floorN} of them), idle.
- **6** the argv captured in row 1, replayed four ways, interleaved (${CFG.hardN} samples each): **on** = exactly the daemon's root-mode launch: \`--seccomp\` with \`buildPolicy(hostArch())\`, and \`/bin/sh -c <the daemon's join script> sbx-join <cgroup.procs files> -- /usr/bin/prlimit ${R.hardening.prlimit.join(" ")} -- /usr/bin/setpriv --reuid=U --regid=U --clear-groups -- bwrap …\` into a fresh cgroup per sample under \`/sys/fs/cgroup/{memory,cpu,cpuacct,pids}/sbx-bench-<pid>/<n>\` with the limits the daemon wrote for the captured sandbox (${Object.entries(R.hardening.cgroupValues).filter(([, v]) => v !== null).map(([k, v]) => `${k} ${v}`).join(", ")}; oom_score_adj ${R.hardening.oomScoreAdj}); **off** = the same argv without \`--seccomp\`, bwrap spawned directly as host uid U (node's uid/gid option, which also clears supplementary groups), no cgroup, no rlimits. The partial variants (6c) take one of the two. Each variant was checked first: ${Object.entries(h.seen).map(([k, v]) => `${k}: \`${v}\``).join("; ")}. 6b runs \`/.sbx/node -e <script>\` inside each variant; the script does 20 warm-up then ${CFG.hardRttN} sequential \`child_process.spawn('/bin/true', {stdio: "pipe"})\` until \`exit\` and prints the times (every sample pooled; the same script on the host gives the outside figure). Creating and removing the cgroup (6d) is outside the timed part, as the daemon does it before launching and after bwrap has exited.
`;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
