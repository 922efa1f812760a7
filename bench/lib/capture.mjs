// The daemon's real launch of a live sandbox, read back from /proc so the floors can replay it.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SUPERVISOR, SUPERVISOR_NAME, daemonModule } from "./env.mjs";
import { procStatus, sandboxProcs } from "./proc.mjs";

/** What launcher.ts pipes in for the sandbox's /etc files. */
const ETC_DATA = {
  "/etc/passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\nuser:x:1000:1000:sandbox user:/home/user:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
  "/etc/group": "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
  "/etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
};
/** bwrap options that name an inherited fd, and how many arguments each takes. */
const FD_OPTIONS = { "--ro-bind-data": 2, "--bind-data": 2, "--file": 2, "--ro-bind-fd": 2, "--bind-fd": 2, "--seccomp": 1, "--add-seccomp-fd": 1 };
/** The sandbox's command as launcher.ts writes it. */
export const SUPERVISOR_CMD = "/.sbx/supervisor";
export const FLOOR_DIRS = join(tmpdir(), `sbx-bench-floor-${process.pid}`);

/**
 * The exact argv the daemon gave bwrap for a live sandbox, read from /proc, and for every fd it
 * names something equivalent to hand a replayed bwrap: the /etc data, the node binary, the
 * supervisor binary this sandbox got, an empty directory of the floor's own for a writable
 * bind, and for anything else the same file as the sandbox sees it. The seccomp program, which
 * the supervisor reads from the fd after `--seccomp-fd`, is the one the daemon compiles for
 * every sandbox. What cannot be recovered is dropped from the argv and listed in `omitted`.
 */
export function captureSandbox(daemonPid) {
  const procs = sandboxProcs().filter((p) => p.name === "bwrap" && p.ppid === daemonPid);
  if (procs.length === 0) throw new Error("no bwrap child of the daemon found");
  const pid = procs[0].pid;
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  if (argv.at(-1) === "") argv.pop();
  const cmdAt = argv.lastIndexOf(SUPERVISOR_CMD);
  if (cmdAt < 0) throw new Error(`the daemon's bwrap argv has no ${SUPERVISOR_CMD} command: ${argv.slice(-6).join(" ")}`);
  const args = [];
  const fds = [];
  const omitted = [];
  for (let i = 1; i < cmdAt; i++) {
    const opt = argv[i];
    const arity = FD_OPTIONS[opt];
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
    else if (dest === SUPERVISOR_CMD) source = { kind: "file", path: keepCopy(`supervisor-${pid}`, fromInside(pid, dest) ?? readFileSync(SUPERVISOR), 0o755) };
    else if (opt === "--bind-fd") source = { kind: "dir", dest, mode: dest === "/tmp" ? 0o1777 : 0o755 };
    // a read-only directory (the daemon's /etc view): a copy of it as this sandbox sees it, bound the same way
    else if (opt === "--ro-bind-fd" && treeInside(pid, dest)) source = { kind: "file", path: keepTree(`tree${fd}-${pid}`, treeInside(pid, dest)) };
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
  const command = argv.slice(cmdAt);
  const at = command.indexOf("--seccomp-fd");
  if (at < 0) throw new Error(`the supervisor's argv has no --seccomp-fd: ${command.join(" ")}`);
  const seccompFd = Number(command[at + 1]);
  fds.push({ fd: seccompFd, source: { kind: "data", data: daemonModule.buildPolicy(daemonModule.hostArch()) } });
  args.push(...command);
  return { bwrap: argv[0], args, fds, omitted, seccompFd, argc: argv.length - 1, hardening: captureHardening(pid) };
}

/**
 * What the daemon's root-mode launch wrapped around that bwrap (sbx-launch, exec'd into it, so
 * only its effects are left to read): the cgroup limits it sits under, its rlimits and its
 * oom_score_adj.
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
    // sbx-launch's rlimit options as the daemon passed them (soft = hard; it always sets core 0)
    rlimits: ["--nofile", nofile[1], ...(nproc && nproc[1] !== "unlimited" ? ["--nproc", nproc[1]] : [])],
    core: core.join(":"),
    oomScoreAdj: readFileSync(`/proc/${pid}/oom_score_adj`, "utf8").trim(),
  };
}

function keepCopy(name, data, mode = 0o644) {
  mkdirSync(FLOOR_DIRS, { recursive: true, mode: 0o755 });
  const path = join(FLOOR_DIRS, name);
  writeFileSync(path, data, { mode });
  return path;
}

/** The root of the sandbox of bwrap `pid` as its supervisor sees it (/proc/PID/root), or null. */
function rootInside(pid) {
  const uid = procStatus(pid)?.uid;
  const sup = sandboxProcs(uid).find((p) => p.name === SUPERVISOR_NAME);
  return sup ? `/proc/${sup.pid}/root` : null;
}

/** A file as the sandbox of bwrap `pid` sees it, read through its supervisor's root. */
function fromInside(pid, path) {
  const root = rootInside(pid);
  try {
    return root && readFileSync(`${root}${path}`);
  } catch {
    return null;
  }
}

/** The host path of directory `path` as the sandbox of bwrap `pid` sees it, if it is one. */
function treeInside(pid, path) {
  const root = rootInside(pid);
  try {
    return root && statSync(`${root}${path}`).isDirectory() ? `${root}${path}` : null;
  } catch {
    return null;
  }
}

/** A copy of the tree at `from` (links, modes and owners kept), kept for the floors. */
function keepTree(name, from) {
  mkdirSync(FLOOR_DIRS, { recursive: true, mode: 0o755 });
  const path = join(FLOOR_DIRS, name);
  execFileSync("cp", ["-a", "--", `${from}/.`, path]);
  return path;
}

/**
 * The same launch with the per-entry /etc binds the daemon made before its /etc view (issue 11
 * item 3): `--ro-bind /etc/NAME /etc/NAME` for each shared entry the host has and each linked
 * path, where the view's one `--ro-bind-fd FD /etc` stands, exactly as launcher.ts wrote them.
 */
export function withPerEntryEtc(capture, names, linked) {
  const i = capture.args.findIndex((a, k) => a === "--ro-bind-fd" && capture.args[k + 2] === "/etc");
  if (i < 0) throw new Error("the captured argv binds no /etc view (--ro-bind-fd FD /etc)");
  const fd = Number(capture.args[i + 1]);
  const binds = [];
  for (const name of names) if (existsSync(`/etc/${name}`)) binds.push("--ro-bind", `/etc/${name}`, `/etc/${name}`);
  for (const path of linked) binds.push("--ro-bind", path, path);
  return { ...capture, args: [...capture.args.slice(0, i), ...binds, ...capture.args.slice(i + 3)], fds: capture.fds.filter((f) => f.fd !== fd) };
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

/** The same argv with the supervisor command (and the seccomp program it would read) replaced. */
export function withCommand(capture, command) {
  const i = capture.args.lastIndexOf(SUPERVISOR_CMD);
  if (i < 0) throw new Error(`captured bwrap argv has no ${SUPERVISOR_CMD} command`);
  return { ...capture, args: [...capture.args.slice(0, i), ...command], fds: capture.fds.filter((f) => f.fd !== capture.seccompFd) };
}

/**
 * The same launch with another seccomp program on the supervisor's fd. The supervisor refuses to
 * start without one, so "no seccomp" is a one-instruction program that allows every call.
 */
export function withSeccompProgram(capture, program) {
  return { ...capture, fds: capture.fds.map((f) => (f.fd === capture.seccompFd ? { fd: f.fd, source: { kind: "data", data: program } } : f)) };
}

/** BPF_RET|BPF_K SECCOMP_RET_ALLOW: struct sock_filter { u16 code; u8 jt, jf; u32 k } in host order. */
export function allowAllProgram() {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(0x06, 0);
  b.writeUInt32LE(0x7fff0000, 4);
  return b;
}
