import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidOptionError, RpcError, Sandbox } from "@sbx/client";
import { sandboxHostPids, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { useDaemon } from "../helpers/fixtures.js";
import { runBash, waitFor } from "../helpers/bash.js";
import { RawClient } from "../helpers/raw.js";

/**
 * SECURITY.md "Exhausting the host", against REAL cgroup v1 (this host's
 * /sys/fs/cgroup/{memory,cpu,cpuacct,pids}), real bwrap and the real root-mode storage mount:
 * each limit is hit by hostile code, and the test checks both the clear reason inside and the
 * bound the host sees.
 */

const MIB = 1024 * 1024;
const PIDS = 64;
const NOFILE = 1536;
/** Own sandbox uids (explicit, of a small count), so processes of other test files' daemons never count here. */
const UID_BASE = 20_000_000; // above the automatic ranges (200000 + 65536 × up to 256)
const UID_COUNT = 1000;
const CONTROLLERS = ["memory", "cpu", "cpuacct", "pids"] as const;

const daemon = useDaemon({ config: { pidsPerSandbox: PIDS, openFilesPerProcess: NOFILE, uidBase: UID_BASE, uidCount: UID_COUNT } });
const cleanup: Sandbox[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function create(options: Parameters<typeof Sandbox.create>[0] = {}, d: TestDaemon = daemon): Promise<Sandbox> {
  const sb = await Sandbox.create({ ...d.opts, ...options });
  cleanup.push(sb);
  return sb;
}

const run = (box: Sandbox, script: string) => runBash(box, script);

/** The daemon's own cgroup base dir in one hierarchy: sbx-<12 hex of sha256(stateDir)>. */
function cgroupBase(stateDir: string, controller: string): string {
  return `/sys/fs/cgroup/${controller}/sbx-${createHash("sha256").update(stateDir).digest("hex").slice(0, 12)}`;
}
const cgroupFile = (d: TestDaemon, controller: string, id: string, file: string) => readFileSync(join(cgroupBase(d.stateDir, controller), id, file), "utf8").trim();
const cgroupProcs = (d: TestDaemon, id: string) => cgroupFile(d, "pids", id, "cgroup.procs").split("\n").filter(Boolean).map(Number);

/** Sandbox cgroup dirs (not interface files) under each of a daemon's base dirs. */
function cgroupChildren(stateDir: string): string[] {
  const out: string[] = [];
  for (const c of CONTROLLERS) {
    const base = cgroupBase(stateDir, c);
    if (!existsSync(base)) continue;
    for (const e of readdirSync(base, { withFileTypes: true })) if (e.isDirectory()) out.push(`${c}/${e.name}`);
  }
  return out;
}

const mountsUnder = (dir: string) =>
  readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p.startsWith(`${dir}/`));

/** Loop devices still backed by a file below `dir` (root-mode storage images). */
function loopsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const dev of readdirSync("/sys/block").filter((d) => d.startsWith("loop"))) {
    try {
      const backing = readFileSync(`/sys/block/${dev}/loop/backing_file`, "utf8").trim();
      if (backing.startsWith(`${dir}/`)) out.push(`${dev} ${backing}`);
    } catch {}
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

const rssBytes = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

/** Reads a process's stdout until the first newline (the process keeps running). */
async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return text.split("\n")[0]!;
}

/** Time from `spawn("true")` to its exit status, in ms. */
async function roundTrip(sb: Sandbox): Promise<number> {
  const t = performance.now();
  const p = await sb.spawn("true", { stdout: "null", stderr: "null" });
  const status = await p.status;
  if (status.code !== 0) throw new Error(`true exited with ${JSON.stringify(status)}`);
  return performance.now() - t;
}

const FORK_BOMB = ":(){ :|:& };:";
const HERE = fileURLToPath(new URL(".", import.meta.url));
/** Connects to a sandbox, spawns `cat /dev/zero` and prints how many bytes it has read so far, every 100 ms. */
const FLOOD_READER = `
import { Sandbox } from "@sbx/client";
const [url, token, id] = process.argv.slice(1);
const sb = await Sandbox.connect(id, { url, token });
const p = await sb.spawn("cat", { args: ["/dev/zero"], stderr: "null" });
let n = 0;
setInterval(() => process.stdout.write(n + "\\n"), 100);
try { for await (const chunk of p.stdout) n += chunk.length; } catch {}
process.stdout.write(n + "\\n");
process.exit(0);
`;
/** Allocates and touches 1 GiB, then says it survived (it must not). */
const MEMORY_HOG = "b = bytearray(1 << 30)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived', len(b))";

/**
 * Opens up to 2000 pipes, asks each for a 1 MiB buffer (F_SETPIPE_SZ) and fills it; prints
 * what it got as JSON and keeps them all open until its stdin closes.
 */
const PIPE_HOARD = [
  "import errno, fcntl, json, os, sys",
  "F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032",
  "pipes, grown, refused, held, stop = [], 0, None, 0, None",
  "try:",
  "  while len(pipes) < 2000:",
  "    r, w = os.pipe()",
  "    pipes.append((r, w))",
  "    try:",
  "      fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)",
  "      grown += 1",
  "    except OSError as e:",
  "      refused = refused or [len(pipes) - 1, errno.errorcode[e.errno]]",
  "    os.set_blocking(w, False)",
  "    while True:",
  "      try: held += os.write(w, b'x' * 65536)",
  "      except BlockingIOError: break",
  "except OSError as e:",
  "  stop = errno.errorcode[e.errno]",
  "last = fcntl.fcntl(pipes[-1][1], F_GETPIPE_SZ)",
  "print(json.dumps({'pipes': len(pipes), 'grown': grown, 'refused': refused, 'held': held, 'stop': stop, 'last': last}), flush=True)",
  "sys.stdin.read()",
].join("\n");

/** Forks up to 60 processes that each open as many (minimal, 8 KiB) pipes as they may, fill them, and hold them. */
const PIPE_SWARM = [
  "import os, time",
  "for k in range(60):",
  "  try: pid = os.fork()",
  "  except OSError: break",
  "  if pid == 0:",
  "    pipes = []",
  "    try:",
  "      while True:",
  "        r, w = os.pipe()",
  "        pipes.append((r, w))",
  "        os.set_blocking(w, False)",
  "        while True:",
  "          try: os.write(w, b'x' * 4096)",
  "          except BlockingIOError: break",
  "    except OSError: pass",
  "    time.sleep(60)",
  "    os._exit(0)",
  "time.sleep(60)",
].join("\n");

afterAll(async () => {
  for (const sb of cleanup) await sb.kill().catch(() => {});
});

describe("memory", () => {
  it("a 1 GiB hog in a 256MiB sandbox is OOM-killed; the sandbox and daemon carry on", async () => {
    const sb = await create({ memory: "256MiB" });
    expect(cgroupFile(daemon, "memory", sb.id, "memory.limit_in_bytes")).toBe(String(256 * MIB));
    // No swap beyond the cap either (this host accounts swap: memsw exists).
    expect(cgroupFile(daemon, "memory", sb.id, "memory.memsw.limit_in_bytes")).toBe(String(256 * MIB));
    const out = await (await sb.spawn("python3", { args: ["-c", MEMORY_HOG] })).output();
    expect(out.status).toEqual({ success: false, code: 137, signal: "SIGKILL", oom: true });
    expect(out.stdoutText).toBe("");
    expect(Number(/^oom_kill (\d+)$/m.exec(cgroupFile(daemon, "memory", sb.id, "memory.oom_control"))![1])).toBe(1);

    // Still usable, and a later ordinary SIGKILL is not mistaken for an OOM kill.
    expect((await run(sb, "echo alive")).out).toBe("alive\n");
    const sleeper = await sb.spawn("sleep", { args: ["30"] });
    await sleeper.kill("SIGKILL");
    expect(await sleeper.status).toEqual({ success: false, code: 137, signal: "SIGKILL", oom: false });
    expect((await Sandbox.list({ ...daemon.opts })).map((s) => s.id)).toContain(sb.id);

    const usage = await sb.usage();
    expect(usage.memoryPeakBytes).toBeGreaterThanOrEqual(0.9 * 256 * MIB);
    expect(usage.memoryPeakBytes).toBeLessThanOrEqual(256 * MIB);
    await sb.kill();
  });

  it("an OOM kill of a grandchild is not blamed on the next process killed with SIGKILL", async () => {
    const sb = await create({ memory: "256MiB" });
    // bash survives; the python it started is the one the kernel kills.
    const parent = await (await sb.spawn("bash", { args: ["-c", `python3 -c "${MEMORY_HOG}"; echo "python: $?"`] })).output();
    expect(parent.status).toEqual({ success: true, code: 0, signal: null, oom: false });
    expect(parent.stdoutText).toBe("python: 137\n");
    expect(cgroupFile(daemon, "memory", sb.id, "memory.oom_control")).toMatch(/^oom_kill 1$/m);
    // A later SIGKILL sent through the API is just that.
    const sleeper = await sb.spawn("sleep", { args: ["30"] });
    await sleeper.kill("SIGKILL");
    expect(await sleeper.status).toEqual({ success: false, code: 137, signal: "SIGKILL", oom: false });
    await sb.kill();
  });

  it("pipe buffers are bounded per sandbox: 1 MiB pipes are refused past the per-user soft limit, all of it charged to the sandbox's memory cap; a neighbour is unaffected", async () => {
    // The kernel's per-user pipe budget (pages); each sandbox runs as a host uid of its own, so it is per sandbox.
    const softPages = Number(readFileSync("/proc/sys/fs/pipe-user-pages-soft", "utf8"));
    expect(softPages, "fs.pipe-user-pages-soft is 0 (unlimited) on this host").toBeGreaterThan(0);
    const softBytes = softPages * 4096;
    expect(softBytes).toBeLessThan(256 * MIB);
    const neighbour = await create({ memory: "128MiB" });
    const sb = await create({ memory: "256MiB" });
    const hoard = await sb.spawn("python3", { args: ["-c", PIPE_HOARD], stdin: "piped", stderr: "null" });
    const got = JSON.parse(await firstLine(hoard.stdout!)) as { pipes: number; grown: number; refused: [number, string] | null; held: number; stop: string | null; last: number };
    // Growth is refused (EPERM: no CAP_SYS_RESOURCE inside) once the sandbox's pipes hold the soft limit: 64 MiB here, of 1 MiB pipes.
    expect(got.refused?.[1]).toBe("EPERM");
    expect(got.grown).toBe(got.refused![0]);
    expect(got.grown * MIB).toBeLessThanOrEqual(softBytes);
    expect(got.grown * MIB).toBeGreaterThan(softBytes - 2 * MIB);
    // Later pipes get the minimal buffer, and the open-files cap ends the hoard long before 2000 pipes.
    expect(got.last).toBeLessThanOrEqual(8192);
    expect(got.stop).toBe("EMFILE");
    expect(got.pipes).toBeLessThan(NOFILE / 2);
    // What the pipes hold: the grown ones full, the rest a page or two each; well under the memory cap.
    expect(got.held).toBeGreaterThanOrEqual(got.grown * MIB);
    expect(got.held).toBeLessThan(softBytes + got.pipes * 8192);
    // Pipe buffers are charged to the sandbox's memory cgroup (so more processes hoarding would meet its cap, not the host's).
    const peak = Number(cgroupFile(daemon, "memory", sb.id, "memory.max_usage_in_bytes"));
    expect(peak).toBeGreaterThanOrEqual(got.held);
    expect(peak).toBeLessThanOrEqual(256 * MIB);

    // While the hoard holds its pipes: the neighbour runs promptly and still gets a 1 MiB pipe of its own budget.
    const t = performance.now();
    expect(await (await neighbour.spawn("true")).status).toMatchObject({ success: true });
    expect(performance.now() - t).toBeLessThan(2000);
    const own = await neighbour.spawn("python3", { args: ["-c", "import fcntl, os\nr, w = os.pipe()\nprint(fcntl.fcntl(w, 1031, 1 << 20))"] });
    expect((await own.output()).stdoutText).toBe(`${MIB}\n`);
    await hoard.kill("SIGKILL");
    expect(await hoard.status).toMatchObject({ signal: "SIGKILL", oom: false });
    await Promise.all([sb.kill(), neighbour.kill()]);
  });

  it("many processes each holding minimal pipes meet the sandbox's memory cap (an OOM kill there), not the host's", async () => {
    const neighbour = await create({ memory: "128MiB" });
    const sb = await create({ memory: "256MiB" });
    // ~60 processes × ~766 pipes × 8 KiB is ~370 MiB of pipe buffers: over the cap, though each pipe is as small as the kernel makes it.
    await sb.spawn("python3", { args: ["-c", PIPE_SWARM], stdout: "null", stderr: "null" });
    const oomKills = () => Number(/^oom_kill (\d+)$/m.exec(cgroupFile(daemon, "memory", sb.id, "memory.oom_control"))![1]);
    await waitFor("an OOM kill in the pipe-hoarding sandbox", () => oomKills() > 0, 15_000);
    expect(Number(cgroupFile(daemon, "memory", sb.id, "memory.max_usage_in_bytes"))).toBeLessThanOrEqual(256 * MIB);
    expect(Number(cgroupFile(daemon, "memory", sb.id, "memory.memsw.max_usage_in_bytes"))).toBeLessThanOrEqual(256 * MIB);
    const t = performance.now();
    expect(await (await neighbour.spawn("true")).status).toMatchObject({ success: true });
    expect(performance.now() - t).toBeLessThan(2000);
    await Promise.all([sb.kill(), neighbour.kill()]);
  });
});

describe("pids", () => {
  it(`a fork bomb stops at pidsPerSandbox (${PIDS}) with EAGAIN; the daemon stays responsive; kill cleans up`, async () => {
    const sb = await create();
    const probe = await create();
    expect(cgroupFile(daemon, "pids", sb.id, "pids.max")).toBe(String(PIDS));
    const bomb = await sb.spawn("python3", {
      args: [
        "-c",
        "import errno, os, time\nn = 0\ntry:\n  while True:\n    if os.fork() == 0:\n      time.sleep(120)\n      os._exit(0)\n    n += 1\nexcept OSError as e:\n  print(n, errno.errorcode[e.errno], flush=True)\ntime.sleep(120)",
      ],
      stderr: "null",
    });
    const [forks, errno] = (await firstLine(bomb.stdout!)).split(" ");
    expect(errno).toBe("EAGAIN");
    // The supervisor and its threads count too, so fewer than PIDS forks succeed.
    expect(Number(forks)).toBeGreaterThan(PIDS / 2);
    expect(Number(forks)).toBeLessThan(PIDS);
    const current = Number(cgroupFile(daemon, "pids", sb.id, "pids.current"));
    expect(current).toBeLessThanOrEqual(PIDS);
    expect(current).toBeGreaterThan(Number(forks));

    // At the cap even the daemon's own spawn gets EAGAIN, and the daemon answers other sandboxes promptly.
    const spawnErr = await sb.spawn("true").catch((e: unknown) => e);
    expect(spawnErr).toBeInstanceOf(RpcError);
    expect((spawnErr as RpcError).errno).toBe("EAGAIN");
    const t = performance.now();
    expect((await run(probe, "echo pong")).out).toBe("pong\n");
    expect(performance.now() - t).toBeLessThan(2000);

    const procs = cgroupProcs(daemon, sb.id);
    expect(procs.length).toBeGreaterThan(PIDS / 2);
    await sb.kill();
    const mine = (entries: string[]) => entries.filter((e) => e.includes(sb.id));
    const gone = () =>
      CONTROLLERS.every((c) => !existsSync(join(cgroupBase(daemon.stateDir, c), sb.id))) &&
      mine(mountsUnder(daemon.stateDir)).length + mine(loopsUnder(daemon.stateDir)).length + mine(readdirSync(join(daemon.stateDir, "mnt"))).length === 0;
    await waitFor("the fork bomb's cgroups and storage to go", gone, 3000).catch(() => {});
    expect(CONTROLLERS.filter((c) => existsSync(join(cgroupBase(daemon.stateDir, c), sb.id)))).toEqual([]);
    expect(mine(mountsUnder(daemon.stateDir))).toEqual([]);
    expect(mine(loopsUnder(daemon.stateDir))).toEqual([]);
    expect(mine(readdirSync(join(daemon.stateDir, "mnt")))).toEqual([]);
    expect(procs.filter(alive)).toEqual([]);
    expect(await bomb.status).toEqual({ success: false, code: 137, signal: "SIGKILL", oom: false });
    await probe.kill();
  });
});

describe("disk", () => {
  it("home and /tmp share one 16MiB cap: 64 MiB of writes end in ENOSPC in either", async () => {
    const sb = await create({ disk: "16MiB" });
    // The host sees one file system of at most 16 MiB (less whatever its metadata takes) for the two.
    const st = statfsSync(join(daemon.stateDir, "mnt", sb.id));
    const room = st.bavail * st.bsize;
    expect(st.blocks * st.bsize).toBeLessThanOrEqual(16 * MIB);
    expect(room).toBeGreaterThan(14 * MIB);
    const r = await run(
      sb,
      [
        "head -c 8388608 /dev/zero > /home/user/half; echo home=$?",
        "head -c 67108864 /dev/zero > /tmp/big; echo tmp=$?",
        "stat -c %s /home/user/half /tmp/big",
        "head -c 1048576 /dev/zero > /home/user/more; echo more=$?",
        "rm /tmp/big; head -c 1048576 /dev/zero > /home/user/more; echo after-rm=$?",
      ].join("\n"),
    );
    const lines = r.out.trim().split("\n");
    expect(lines[0]).toBe("home=0");
    expect(lines[1]).toBe("tmp=1");
    // Together the two files took all the room there was, and no more.
    const [half, big] = [Number(lines[2]), Number(lines[3])];
    expect(half).toBe(8 * MIB);
    expect(half + big).toBeGreaterThan(room - 512 * 1024);
    expect(half + big).toBeLessThanOrEqual(room);
    expect(lines[4]).toBe("more=1");
    expect(lines[5]).toBe("after-rm=0");
    expect(r.err).toBe("head: error writing 'standard output': No space left on device\n".repeat(2));
    await sb.kill();
  });

  it("the disk cap, not the memory cap, bounds what a sandbox can store: 512 MiB fit in a 128MiB sandbox", async () => {
    const sb = await create({ memory: "128MiB", disk: "1GiB" });
    const r = await run(sb, "head -c 536870912 /dev/zero > /home/user/big; echo rc=$?; stat -c %s /home/user/big");
    expect(r.out).toBe(`rc=0\n${512 * MIB}\n`);
    expect(r.status.oom).toBe(false);
    expect(cgroupFile(daemon, "memory", sb.id, "memory.oom_control")).toMatch(/^oom_kill 0$/m);
    expect((await sb.usage()).diskBytes).toBeGreaterThanOrEqual(512 * MIB);
    await sb.kill();
  });

  it("fs.writeFile of more than fits rejects with errno ENOSPC and says there is no space", async () => {
    const sb = await create({ disk: "16MiB" });
    const err = await Promise.race([
      sb.fs.writeFile("/home/user/huge", new Uint8Array(32 * MIB).fill(7)).then(
        () => new Error("writeFile resolved"),
        (e: unknown) => e,
      ),
      sleep(20_000).then(() => new Error("writeFile still pending after 20 s")),
    ]);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).errno).toBe("ENOSPC");
    expect((err as Error).message).toMatch(/no space left/i);
    // And the sandbox is fine: after removing the partial file there is room again.
    expect((await run(sb, "rm -f /home/user/huge && echo ok > /tmp/ok && cat /tmp/ok")).out).toBe("ok\n");
    await sb.fs.writeFile("/tmp/small", new Uint8Array(MIB));
    expect((await sb.fs.stat("/tmp/small")).size).toBe(MIB);
    await sb.kill();
  });

  it("an inode bomb ends in ENOSPC at the sandbox's own inode cap", async () => {
    const sb = await create({ disk: "16MiB" });
    const r = await run(
      sb,
      "python3 -c 'import errno, os\nn = 0\ntry:\n  while True:\n    os.close(os.open(\"/tmp/f%d\" % n, os.O_CREAT | os.O_WRONLY)); n += 1\nexcept OSError as e:\n  print(n, errno.errorcode[e.errno])'",
    );
    const [files, errno] = r.out.trim().split(" ");
    expect(errno).toBe("ENOSPC");
    // The cap scales with the disk size (at most one inode per 2 KiB), and the bomb used all of it
    // but the few the file system and the home and tmp dirs hold.
    const st = statfsSync(join(daemon.stateDir, "mnt", sb.id));
    expect(st.ffree).toBe(0);
    expect(st.files).toBeLessThanOrEqual((16 * MIB) / 2048);
    expect(Number(files)).toBeGreaterThan(st.files - 16);
    expect(Number(files)).toBeLessThan(st.files);
    expect((await run(sb, "echo still")).out).toBe("still\n");
    await sb.kill();
  });
});

describe("open files", () => {
  it("ulimit -n inside is openFilesPerProcess, and opening more fails with EMFILE", async () => {
    const sb = await create();
    expect((await run(sb, "ulimit -n; ulimit -Hn; ulimit -u")).out).toBe(`${NOFILE}\n${NOFILE}\n${PIDS}\n`);
    const r = await run(sb, "python3 -c 'import errno, os\nn = 0\ntry:\n  while True: os.open(\"/dev/null\", os.O_RDONLY); n += 1\nexcept OSError as e:\n  print(n, errno.errorcode[e.errno])'");
    // stdin, stdout and stderr are the other three.
    expect(r.out).toBe(`${NOFILE - 3} EMFILE\n`);
    await sb.kill();
  });
});

describe("cpu", () => {
  it("cpus 0.5: two busy processes for 2 s of wall time get about 1 CPU-second", async () => {
    const sb = await create({ cpus: 0.5 });
    expect(cgroupFile(daemon, "cpu", sb.id, "cpu.cfs_quota_us")).toBe("50000");
    expect(cgroupFile(daemon, "cpu", sb.id, "cpu.cfs_period_us")).toBe("100000");
    const before = await sb.usage();
    const t = performance.now();
    const r = await run(sb, "timeout 2 bash -c 'while :; do :; done' & timeout 2 bash -c 'while :; do :; done' & wait");
    const wall = (performance.now() - t) / 1000;
    const after = await sb.usage();
    expect(r.code).toBe(0);
    expect(wall).toBeGreaterThanOrEqual(2);
    expect(wall).toBeLessThan(3);
    // Unthrottled, two cores would give about 4 CPU-seconds.
    expect(after.cpuSeconds - before.cpuSeconds).toBeGreaterThan(0.65);
    expect(after.cpuSeconds - before.cpuSeconds).toBeLessThan(1.35);
    // The kernel did throttle it.
    expect(Number(/^nr_throttled (\d+)$/m.exec(cgroupFile(daemon, "cpu", sb.id, "cpu.stat"))![1])).toBeGreaterThan(5);
    await sb.kill();
  });

  it("a quota below what the kernel accepts (1 ms per 100 ms period) is an invalid option, not an internal error", async () => {
    const err = await Sandbox.create({ ...daemon.opts, cpus: 0.005 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as Error).message).toMatch(/\bcpus\b/);
  });
});

describe("output", () => {
  it("an endless stdout flood nobody reads does not grow the daemon's memory", async () => {
    const sb = await create();
    const daemonPid = daemon.proc.pid!;
    const before = rssBytes(daemonPid);
    const flood = await sb.spawn("cat", { args: ["/dev/zero"], stderr: "null" });
    let exited = false;
    void flood.status.then(() => (exited = true));
    let grown = 0;
    for (let i = 0; i < 8; i++) {
      await sleep(500);
      grown = Math.max(grown, rssBytes(daemonPid) - before);
    }
    expect(exited).toBe(false);
    expect(grown).toBeLessThan(64 * MIB);
    // The flood was only held back, not broken: the stream still delivers zeros.
    const reader = flood.stdout!.getReader();
    const { value } = await reader.read();
    expect(value!.length).toBeGreaterThan(0);
    expect(value!.every((b) => b === 0)).toBe(true);
    reader.releaseLock();
    await flood.kill("SIGKILL");
    expect(await flood.status).toEqual({ success: false, code: 137, signal: "SIGKILL", oom: false });
    await sb.kill();
  });
});

describe("timeout", () => {
  it('a sandbox with timeout "2s" is killed at expiry with reason "timeout"', async () => {
    const t0 = Date.now();
    const sb = await create({ timeout: "2s" });
    const raw = await RawClient.open(daemon.url, daemon.token);
    try {
      expect((await raw.call("sandbox.connect", { id: sb.id })).result.id).toBe(sb.id);
      const p = await sb.spawn("sleep", { args: ["60"] });
      expect(await p.status).toEqual({ success: false, code: 137, signal: "SIGKILL", oom: false });
      const elapsed = Date.now() - t0;
      expect(elapsed).toBeGreaterThanOrEqual(2000);
      expect(elapsed).toBeLessThan(4000);
      const exit = await waitFor("sandbox.exit", () => raw.notifications.find((n) => n.method === "sandbox.exit"));
      expect(exit.params).toEqual({ id: sb.id, reason: "timeout" });
      const usage = await Sandbox.usageOf(sb.id, daemon.opts);
      expect(usage.status).toBe("stopped");
      expect(usage.wallSeconds).toBeGreaterThanOrEqual(1.9);
      expect(usage.wallSeconds).toBeLessThan(3);
      expect((await Sandbox.list({ ...daemon.opts })).map((s) => s.id)).not.toContain(sb.id);
    } finally {
      raw.close();
    }
  });
});

describe("everything at once", () => {
  it("a fork bomb, a memory hog, a disk filler and an output flood leave a fifth sandbox's round trip fast", async () => {
    const probe = await create();
    await roundTrip(probe); // warm up
    const idle: number[] = [];
    for (let i = 0; i < 20; i++) idle.push(await roundTrip(probe));
    const daemonPid = daemon.proc.pid!;
    const rssBefore = rssBytes(daemonPid);

    const [bomb, hog, filler, flood] = await Promise.all([create(), create({ memory: "256MiB" }), create({ disk: "64MiB" }), create()]);
    await bomb.spawn("bash", { args: ["-c", FORK_BOMB], stdout: "null", stderr: "null" });
    await hog.spawn("bash", { args: ["-c", `while :; do python3 -c "${MEMORY_HOG}"; done`], stdout: "null", stderr: "null" });
    const fill = await filler.spawn("bash", { args: ["-c", "while :; do head -c 134217728 /dev/zero > /tmp/f; rm -f /tmp/f; done"], stdout: "null" });
    // Two floods: one nobody reads, one read as fast as it comes by another process (not this
    // one, which measures), so the daemon relays at full speed throughout.
    await flood.spawn("cat", { args: ["/dev/zero"], stderr: "null" });
    const reader = spawn(process.execPath, ["--input-type=module", "-e", FLOOD_READER, daemon.url, daemon.token, flood.id], { cwd: HERE, stdio: ["ignore", "pipe", "pipe"] });
    let readerOut = "";
    let readerErr = "";
    reader.stdout!.on("data", (d) => (readerOut += d));
    reader.stderr!.on("data", (d) => (readerErr += d));
    const floodedSoFar = () => Number(readerOut.trim().split("\n").pop() || 0);

    await waitFor("the fork bomb to reach its cap", () => Number(cgroupFile(daemon, "pids", bomb.id, "pids.current")) >= PIDS - 4, 10_000);
    await waitFor("the flood to flow", () => floodedSoFar() > 16 * MIB, 10_000).catch(() => {});
    expect(readerErr).toBe("");
    expect(floodedSoFar()).toBeGreaterThan(16 * MIB);
    const floodBefore = floodedSoFar();
    const during: number[] = [];
    let rssPeak = 0;
    for (let i = 0; i < 20; i++) {
      during.push(await roundTrip(probe));
      rssPeak = Math.max(rssPeak, rssBytes(daemonPid));
    }
    await sleep(300);
    // However quick the round trips were, the flood gets a few seconds to show it kept flowing (2 cores, a fork bomb beside it).
    await waitFor("the flood to flow on", () => floodedSoFar() - floodBefore > 16 * MIB, 5_000).catch(() => {});
    const floodDuring = floodedSoFar() - floodBefore;

    // Each of the four was really at it (the bomb's count dips while its processes die and respawn).
    await waitFor("the fork bomb still at its cap", () => Number(cgroupFile(daemon, "pids", bomb.id, "pids.current")) >= PIDS - 4, 10_000);
    expect(Number(cgroupFile(daemon, "pids", bomb.id, "pids.current"))).toBeLessThanOrEqual(PIDS);
    await waitFor("an OOM kill of the hog", () => Number(/^oom_kill (\d+)$/m.exec(cgroupFile(daemon, "memory", hog.id, "memory.oom_control"))![1]) >= 1, 10_000);
    expect(await firstLine(fill.stderr!)).toBe("head: error writing 'standard output': No space left on device");
    expect(floodDuring).toBeGreaterThan(16 * MIB);
    await Promise.all([bomb.kill(), hog.kill(), filler.kill(), flood.kill()]);
    await new Promise((r) => (reader.exitCode !== null ? r(null) : reader.once("exit", r)));

    const bound = Math.max(5 * median(idle), 250);
    console.log(
      `true round trip: idle median ${median(idle).toFixed(1)} ms, under attack ${median(during).toFixed(1)} ms (bound ${bound.toFixed(0)} ms); ` +
        `flood relayed ${(floodDuring / MIB).toFixed(0)} MiB meanwhile; daemon RSS +${((rssPeak - rssBefore) / MIB).toFixed(1)} MiB`,
    );
    expect(median(during)).toBeLessThan(bound);
    expect(rssPeak - rssBefore).toBeLessThan(200e6);
    expect(await roundTrip(probe)).toBeLessThan(bound);
    await probe.kill();
  });
});

describe("killing the daemon", () => {
  it("SIGKILL leaves no process, cgroup or mount behind within 3 s; a restarted daemon is clean", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "sbx-test-"));
    const uidBase = UID_BASE + UID_COUNT;
    const config = { pidsPerSandbox: PIDS, uidBase, uidCount: UID_COUNT };
    const ours = () => sandboxHostPids([uidBase, uidBase + UID_COUNT - 1]);
    let first: TestDaemon | null = null;
    try {
      first = await startDaemon({ stateDir, config });
      const a = await create({ timeout: "5m" }, first);
      const b = await create({ memory: "256MiB" }, first);
      await run(a, "head -c 1048576 /dev/zero > /home/user/data");
      await a.spawn("bash", { args: ["-c", FORK_BOMB], stdout: "null", stderr: "null" });
      await b.spawn("bash", { args: ["-c", "while :; do :; done"], stdout: "null", stderr: "null" });
      await b.spawn("sleep", { args: ["600"], stdout: "null", stderr: "null" });
      await waitFor("the fork bomb to grow", () => Number(cgroupFile(first!, "pids", a.id, "pids.current")) >= PIDS / 2);
      // (Warm-pool sandboxes may be there too; they must go just the same.)
      expect(cgroupChildren(stateDir)).toEqual(expect.arrayContaining(CONTROLLERS.flatMap((c) => [`${c}/${a.id}`, `${c}/${b.id}`])));
      expect(mountsUnder(stateDir)).toEqual(expect.arrayContaining([join(stateDir, "mnt", a.id), join(stateDir, "mnt", b.id)]));
      // The bomb's processes die and respawn: wait for a moment with more than half of them alive.
      await waitFor("more than half the fork bomb's processes alive at once", () => ours().length > PIDS / 2, 10_000);
      const seen = [...cgroupProcs(first, a.id), ...cgroupProcs(first, b.id)];

      await first.stop("SIGKILL");
      const killedAt = Date.now();
      const clean = () =>
        ours().length === 0 && cgroupChildren(stateDir).length === 0 && mountsUnder(stateDir).length === 0 && loopsUnder(stateDir).length === 0 && readdirSync(join(stateDir, "mnt")).length === 0;
      await waitFor("the reaper to clean up", clean, 3000).catch(() => {});
      const took = Date.now() - killedAt;
      expect(ours()).toEqual([]);
      expect(seen.filter(alive)).toEqual([]);
      expect(cgroupChildren(stateDir)).toEqual([]);
      expect(mountsUnder(stateDir)).toEqual([]);
      expect(loopsUnder(stateDir)).toEqual([]);
      // Mount points (and any storage images) are gone too.
      expect(readdirSync(join(stateDir, "mnt"))).toEqual([]);
      expect(took).toBeLessThan(3000);
      await a.close().catch(() => {});
      await b.close().catch(() => {});

      const second = await startDaemon({ stateDir, config });
      try {
        expect(second.logs()).toMatch(/reclaimed \d+ leftover sandbox records \(0 processes still running were killed\)/);
        // The reaper already did the rest.
        expect(second.logs()).not.toMatch(/detached \d+ storage mounts|removed \d+ cgroups/);
        expect(await Sandbox.list({ ...second.opts })).toEqual([]);
        expect(readdirSync(join(stateDir, "sandboxes")).filter((f) => f === `${a.id}.json` || f === `${b.id}.json`)).toEqual([]);
        expect(readdirSync(join(stateDir, "mnt"))).not.toContain(a.id);
        const c = await create({}, second);
        expect((await run(c, "echo ok")).out).toBe("ok\n");
        expect(cgroupChildren(stateDir)).toEqual(expect.arrayContaining(CONTROLLERS.map((ctl) => `${ctl}/${c.id}`)));
        await c.kill();
      } finally {
        await second.stop();
      }
    } finally {
      await first?.stop("SIGKILL");
      // Never let a leftover mount hide the assertion that failed.
      for (const m of mountsUnder(stateDir)) spawn("umount", ["--lazy", m]);
      await sleep(100);
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(`${stateDir}-config.json`, { force: true });
    }
  });
});
