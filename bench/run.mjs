#!/usr/bin/env node
// sbx benchmarks: every figure beside its floor, measured in the same run on this machine.
// Usage: node bench/run.mjs   (after `pnpm build`; `pnpm bench` does both)
//        BENCH_QUICK=1 node bench/run.mjs   (small sizes, few iterations: a smoke run)
//        BENCH_ROOT=/path/to/other/checkout [BENCH_LABEL=text] node bench/run.mjs   (measure another built tree)
//        BENCH_TRACE=1 logs the time of each step of every cold-start iteration
// Writes bench/RESULTS.md. Needs root (sandboxes run as host uids 200000+), bwrap >= 0.8.
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
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
  ? { coldN: 5, rttN: 40, stdoutBytes: 64 * MiB, fileBytes: 64 * MiB, reps: 2, idleN: 4, floorIdleN: 2 }
  : { coldN: 30, rttN: 300, stdoutBytes: 1024 * MiB, fileBytes: 512 * MiB, reps: 3, idleN: 20, floorIdleN: 5 };
/**
 * Host uids. The bench daemon gets its own uid base so that its sandboxes cannot be confused
 * with those of another daemon on this host (tests, a developer's daemon) that starts at 200000;
 * the raw-bwrap floors run as uids above both.
 */
const DAEMON_UID_BASE = 230000;
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

async function startDaemon() {
  const stateDir = mkdtempSync(join(tmpdir(), "sbx-bench-"));
  const config = `${stateDir}.config.json`;
  writeFileSync(config, JSON.stringify({ uidBase: DAEMON_UID_BASE }));
  const proc = spawn(process.execPath, [CLI, "daemon", "--listen", "127.0.0.1:0", "--state-dir", stateDir, "--config", config, "--quiet"], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d) => {
    stderr += d;
    process.stderr.write(String(d).replace(/^(?=.)/gm, "[daemon] ")); // --quiet leaves warnings and errors
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
    url, token, proc, stateDir, opts: { url, token }, logs: () => stderr,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(config, { force: true });
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
      const data = recover(pid, fd);
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
  return { bwrap: argv[0], args, fds, omitted, argc: argv.length - 1 };
}

function keepCopy(name, data) {
  mkdirSync(FLOOR_DIRS, { recursive: true, mode: 0o755 });
  const path = join(FLOOR_DIRS, name);
  writeFileSync(path, data, { mode: 0o644 });
  return path;
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
    const child = spawn(capture.bwrap, capture.args, { stdio, uid, gid: uid, env: {} });
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
  const t0 = now();
  const child = spawnRawBwrap(withCommand(capture, command), uid);
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const [code] = await new Promise((r) => child.once("exit", (...a) => r(a)));
  const t = now() - t0;
  if (code !== 0) throw new Error(`raw bwrap ${command.join(" ")} exited ${code}: ${err}`);
  await waitNoSandboxProcs(uid);
  return t;
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
  const d = await startDaemon();
  log(`daemon pid ${d.proc.pid} at ${d.url}`);
  const peer = await startWsPeer();
  const R = {};
  try {
    // ---- 1. cold create → first spawn, vs raw bwrap + supervisor
    log("1. cold start");
    {
      const first = await sdkColdStart(d); // warm-up; also captures the exact bwrap argv
      const capture = captureSandbox(d.proc.pid);
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
    log("5. idle memory");
    {
      await sleep(500);
      const daemonBefore = rssMb(d.proc.pid);
      const sbs = [];
      for (let i = 0; i < CFG.idleN; i++) sbs.push(await Sandbox.create(d.opts));
      await sleep(1500);
      const fresh = perSandboxMemory();
      const daemonAfter = rssMb(d.proc.pid);
      for (const sb of sbs) await sdkTrue(sb, "piped");
      await sleep(1500);
      const used = perSandboxMemory();
      if (fresh.length !== CFG.idleN || used.length !== CFG.idleN) throw new Error(`expected ${CFG.idleN} sandboxes, saw ${fresh.length} / ${used.length}`);
      const capture = captureSandbox(d.proc.pid);
      for (const sb of sbs) await sb.kill();
      await waitNoSandboxProcs();
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
        daemonGrowth: daemonAfter - daemonBefore,
        procs: used[0].procs.join(", "),
      };
      log(`   per sandbox RSS ${mb(R.idle.usedRss)} (PSS ${mb(R.idle.usedPss)}); floor ${mb(R.idle.floorRss)}; daemon +${mb(R.idle.daemonGrowth)}`);
    }
  } finally {
    await peer.stop();
    await d.stop();
    rmSync(FLOOR_DIRS, { recursive: true, force: true });
  }
  R.seconds = (Date.now() - started) / 1000;
  R.loadEnd = loadavg()[0].toFixed(2);
  const md = report(m, R);
  process.stdout.write(md);
  if (QUICK) log(`done in ${R.seconds.toFixed(0)} s (quick run: bench/RESULTS.md left as it was)`);
  else {
    writeFileSync(join(BENCH, "RESULTS.md"), md);
    log(`done in ${R.seconds.toFixed(0)} s; wrote bench/RESULTS.md`);
  }
}

function report(m, R) {
  const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
  const pct = (a, b) => `${((a / b) * 100).toFixed(0)} %`;
  const ok = (cond) => (cond ? "yes" : "**no**");
  const c = R.cold, t = R.rtt, s = R.stdout, fl = R.files, i = R.idle;
  const GiBof = (b) => (b >= 1024 * MiB ? `${b / (1024 * MiB)} GiB` : `${b / MiB} MiB`);
  const rows = [
    ["1", "`Sandbox.create()` → first `spawn(\"true\")` finished, cold", ms(c.total), `bwrap (same argv) + supervisor to its first frame: ${ms(c.sup)}`, ratio(c.total.median, c.sup.median), "≤ 60 ms and ≤ 1.5× floor", `60 ms: ${ok(c.total.median <= 60)}; 1.5×: ${ok(c.total.median <= 1.5 * c.sup.median)}`],
    ["1a", "… of which `Sandbox.create()` (connect + create)", ms(c.create), ms(c.sup), ratio(c.create.median, c.sup.median), "", ""],
    ["1b", "… of which the first `spawn(\"true\")`", ms(c.firstSpawn), `warm spawn (row 2): ${ms(t.piped)}`, ratio(c.firstSpawn.median, t.piped.median), "", ""],
    ["1c", "bare bwrap, same argv, `/usr/bin/true`", "", ms(c.bwrapTrue), "", "(anchor 7.1 ms)", ""],
    ["1d", "bare bwrap, same argv, `node -e 0` (the daemon's node binary)", "", ms(c.bwrapNode), "", "(anchor 42.4 ms)", ""],
    ["1e", "same from a warm pool", "not measured: the daemon has no pool", "", "", "≤ 10 ms", "**no**"],
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
    ["5d", `daemon RSS growth with ${i.n} sandboxes: total / per sandbox`, `${mb(i.daemonGrowth)} / ${(i.daemonGrowth / i.n).toFixed(2)} MB`, "", "", "", ""],
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

Machine: ${m.nproc} cores (${m.cpu}), ${m.memGiB} GiB RAM, Node ${m.node}, ${m.bwrap}, kernel ${m.kernel}; \`ws\` bufferutil addon ${m.bufferutil}. Daemon in root mode (one host uid per sandbox, from ${DAEMON_UID_BASE}), state dir in ${tmpdir()}. 1-minute load average ${m.loadStart} at the start, ${R.loadEnd} at the end (other work on the machine makes every figure noisier).

Medians with p90 (for throughputs, the 10th percentile — the slow tail) over n samples; floors are measured in the same run, interleaved with the sbx samples. Targets from \`shared/TARGETS.md\`.

${table}

How each figure is taken:
- **1** one \`Sandbox.create()\` (a new WebSocket connection + \`sandbox.create\`) then \`spawn("true")\` until its exit status arrives, then \`kill()\` and wait until no sandbox-uid process is left. The floor replays the bwrap argv the daemon really used (${R.bwrapArgc} arguments, read from \`/proc/<bwrap>/cmdline\` of a live sandbox) with the same fd layout (/etc data pipes, \`--ro-bind-fd\` of the node binary and \`dist/supervisor.mjs\`, a plain directory of its own for any \`--bind-fd\`)${R.omitted.length ? `, **without** ${R.omitted.map((o) => `\`${o}\``).join(", ")} (not recoverable from a live sandbox)` : ""} as the same kind of host uid, and times until the supervisor's first stdout byte (its "ready" frame, which is what the daemon waits for). 1c and 1d replace the supervisor command with \`/usr/bin/true\` and \`/.sbx/node -e 0\` and time until bwrap exits.
- **2** \`spawn("true")\` + await \`status\` in one live sandbox (after 30 warm-up spawns), interleaved with \`child_process.spawn('/bin/true')\` until \`exit\` in this process.
- **3** \`spawn("head", ["-c", N, "/dev/zero"])\`, stdout read through the Web ReadableStream until it ends, plus the exit status. Floor: a separate \`ws\` server process sends the same bytes in 64 KiB binary frames to a \`ws\` client in this process. RSS growth is peak minus the value just before (after a GC), sampled every 20 ms.
- **4** \`fs.writeFile(path, ReadableStream)\` of generated 1 MiB chunks into /home/user (tmpfs), then \`fs.readFileStream\` of the same file, read to its end. Floors: the same \`ws\` pair, client→server (masked) and server→client.
- **5** ${i.n} sandboxes, each from its own \`Sandbox.create()\`; VmRSS (and PSS from smaps_rollup) of every process running as that sandbox's host uid, averaged per sandbox. Processes of one sandbox: ${i.procs} (MB). Floor: the same bwrap argv + supervisor started directly (${i.floorN} of them), idle.
`;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
