import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, openSync, closeSync } from "node:fs";
import { SANDBOX_HOME, SANDBOX_HOME_ALIAS } from "@sbx/protocol";
import { JAVA_TRUST_STORE, SANDBOX_BUNDLE, SANDBOX_CA } from "../egress/tls/trust.js";
import { formatCpuList } from "./cpus.js";
import type { SandboxFiles } from "./files.js";
import { DENO_PATH, DENO_REPL_DRIVER, PYTHON_REPL_DRIVER } from "../runtimes/files.js";
import type { RootView } from "../volumes/store.js";

/** Top-level host paths made visible read-only (as the symlinks they are on merged-/usr hosts). */
const SYSTEM_DIRS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

export interface LaunchSpec {
  /** sbx-launch (native/launch.c): joins the cgroups, sets rlimits, affinity and the uid, then execs bwrap. */
  launcherPath: string;
  bwrapPath: string;
  /** Directory fd holding the egress proxy's unix socket, bound in at /.sbx/run: the sandbox's only way out. */
  egressDirFd: number;
  /** Host uid/gid the sandbox runs as (root mode); null keeps the daemon's own (rootless mode). */
  hostUid: number | null;
  /**
   * The daemon's copy of what the sandbox sees of the host's /etc (etc-view.ts), bound read-only
   * at /etc in one bind, and the system CA bundle's path in it; null for a sandbox booted from an
   * image (it has its own /etc).
   */
  etc: { fd: number; systemBundle: string | null } | null;
  /** Size cap of each writable tmpfs (/home and /tmp) when there is no shared storage. */
  tmpfsBytes: number;
  /** The CPUs the sandbox runs on (its quota rounded up); null for all the daemon's. */
  cpuSet: readonly number[] | null;
  /** All the CPUs the daemon runs on: what the sandbox sees as online when it has no set of its own. */
  cpusOnline: readonly number[];
  /** Directory fds of a daemon-mounted storage holding home and tmp together (root mode). */
  storage: { homeFd: number; tmpFd: number } | null;
  /** Mounted volumes and snapshots (root mode, with storage): directory fds bound at checked paths. */
  volumes?: readonly { fd: number; path: string; readOnly: boolean }[];
  /**
   * The file system to boot from instead of the host's /usr (root mode, volumes/root.ts prepared
   * its mount points): sbx-launch mounts its view and leaves it open on rootFd for bwrap.
   */
  root?: { view: RootView; ownHome: boolean; systemBundle: string } | null;
  /**
   * A sandbox booted from an image: sbx-launch makes its user namespace, mapping 0..count-1 to the
   * host block from `base` (hostUid is the block's SANDBOX_UID), and the supervisor keeps the
   * capabilities a process it starts as uid 0 gets (`sudo`).
   */
  userns?: { base: number; count: number } | null;
  /** Open fds of the node binary (for user code) and the native supervisor, held by the daemon for its lifetime. */
  nodeFd: number;
  supervisorFd: number;
  /** The Node preload that routes fetch and http(s) through the proxy, and its lazily loaded half. */
  preloadFd: number;
  preloadImplFd: number;
  /** The Deno binary (null: none) and the REPL drivers (runtimes/files.ts). */
  runtimes: { denoFd: number | null; denoReplFd: number; pythonReplFd: number };
  /** The CA bundle every TLS client inside trusts (the host's plus the daemon's CA), and the daemon's CA alone. */
  trustBundleFd: number;
  /** The same bundle on a second fd, bound over the system bundle's path. */
  trustSystemBundleFd: number;
  trustCaFd: number;
  /** The bundle as a Java trust store (JKS). */
  javaStoreFd: number;
  /** The compiled seccomp program every process in the sandbox runs under; the supervisor installs it. */
  seccomp: Buffer;
  /** Ptys the sandbox may hold at once (its own devpts instance's max=). */
  ptysPerSandbox: number;
  /** cgroup.procs files sbx-launch joins before it execs bwrap (root mode). */
  cgroupProcs: string[];
  /** cgroup v2 without favordynmods: the cgroup the launch starts bwrap in (sbx-launch --cgroup-dir), instead of joining. */
  cgroupDir: string | null;
  rlimits: { nofile: number; nproc: number | null };
  hostname: string;
}

/** The sandbox's user inside (and its group). */
export const SANDBOX_UID = 1000;

/** What uid 0 of a sandbox booted from an image may do (supervisor's setup.c keeps the same set). */
const ROOT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE"];

/** Fixed fd numbers in bwrap's table. */
const FD = { passwd: 3, group: 4, hosts: 5, seccomp: 6, node: 7, supervisor: 8, preload: 9, preloadImpl: 10, egress: 11, trustBundle: 12, trustSystemBundle: 13, trustCa: 14, javaStore: 15, cpusOnline: 16, home: 17, tmp: 18, deno: 19, denoRepl: 20, pythonRepl: 21, etc: 22 } as const;

/** Volumes' directory fds follow the fixed ones. */
const FIRST_VOLUME_FD = FD.etc + 1;

/** The root's directory fd follows the volumes', and the user namespace sbx-launch makes follows that. */
const rootFd = (spec: LaunchSpec) => FIRST_VOLUME_FD + (spec.volumes?.length ?? 0);
const usernsFd = (spec: LaunchSpec) => rootFd(spec) + 1;

const USER_ETC = {
  passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\nuser:x:1000:1000:sandbox user:${SANDBOX_HOME}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
  group: "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
  hosts: "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
};

const SUPERVISOR_ENV: Record<string, string> = {
  HOME: SANDBOX_HOME,
  USER: "user",
  LOGNAME: "user",
  PATH: "/usr/local/bin:/usr/bin:/bin",
  LANG: "C.UTF-8",
};

/**
 * The bwrap argv for one sandbox. Every host path appears as its own argv element; nothing is
 * built as a shell string. Data files and the supervisor arrive on inherited fds (3..), so
 * bwrap needs no read access to the daemon's files after it drops to the sandbox's uid.
 */
export function bwrapArgs(spec: LaunchSpec, fds: typeof FD): string[] {
  // A sandbox booted from an image joins the user namespace sbx-launch made (with a max of 0
  // nested ones, which seccomp refuses anyway); any other gets a new one mapping only its user.
  const userns = spec.userns ? ["--userns", String(usernsFd(spec))] : ["--unshare-user"];
  const a: string[] = [
    ...userns, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup",
    "--uid", String(SANDBOX_UID), "--gid", String(SANDBOX_UID), "--hostname", spec.hostname,
    "--die-with-parent", "--new-session", ...(spec.userns ? [] : ["--disable-userns"]),
    // The supervisor alone starts with these two: CAP_SYS_ADMIN mounts the sandbox's own devpts,
    // CAP_SETPCAP empties the bounding set. It drops every capability before it reads a call but,
    // in a sandbox booted from an image, the ones its uid 0 may have (setup.c).
    "--cap-drop", "ALL", "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETPCAP",
    ...(spec.userns ? ROOT_CAPS.flatMap((cap) => ["--cap-add", cap]) : []),
    // The supervisor is pid 1: processes inside can deliver it only the signals it handles.
    "--as-pid-1",
    "--clearenv",
  ];
  for (const [k, v] of Object.entries(SUPERVISOR_ENV)) a.push("--setenv", k, v);
  const root = spec.root ?? null;
  if (root) {
    // Its own /usr and /etc (passwd and group too); sbx's files go on a tmpfs of their own, and
    // /sys on one holding only the CPU list.
    a.push("--bind-fd", String(rootFd(spec)), "/", "--tmpfs", "/.sbx", "--tmpfs", "/sys");
  } else {
    a.push("--ro-bind", "/usr", "/usr");
    for (const dir of SYSTEM_DIRS) {
      if (!existsSync(dir)) continue;
      const st = lstatSync(dir);
      if (st.isSymbolicLink()) a.push("--symlink", `usr${dir}`, dir);
      else a.push("--ro-bind", dir, dir);
    }
    if (!spec.etc) throw new Error("a sandbox on the host's /usr needs the daemon's /etc view");
    // One bind for all of it (bwrap reads the whole mount table for each); its own passwd and
    // group go over the empty files the view holds for them.
    a.push("--ro-bind-fd", String(fds.etc), "/etc");
    a.push("--perms", "0644", "--ro-bind-data", String(fds.passwd), "/etc/passwd");
    a.push("--perms", "0644", "--ro-bind-data", String(fds.group), "/etc/group");
  }
  a.push("--perms", "0644", "--ro-bind-data", String(fds.hosts), "/etc/hosts");
  // glibc's get_nprocs (Python's os.cpu_count, sysconf) reads this; /sys itself is not there.
  a.push("--perms", "0444", "--ro-bind-data", String(fds.cpusOnline), "/sys/devices/system/cpu/online");
  a.push("--proc", "/proc", "--dev", "/dev");
  if (root?.ownHome) {
    // A volume root keeps home and /tmp in itself (they persist with it); prepareRoot made them.
  } else if (spec.storage) {
    a.push("--bind-fd", String(fds.home), SANDBOX_HOME, "--bind-fd", String(fds.tmp), "/tmp");
  } else {
    // Without a shared mount (rootless), each of the two gets the cap: approximate, and documented so.
    a.push("--size", String(spec.tmpfsBytes), "--perms", "1777", "--tmpfs", "/tmp");
    a.push("--size", String(spec.tmpfsBytes), "--perms", "0755", "--tmpfs", "/home", "--dir", SANDBOX_HOME);
  }
  // The mount point of the home's former name: the supervisor binds the home there (setup.c).
  a.push("--dir", SANDBOX_HOME_ALIAS);
  if (!root) a.push("--symlink", "/tmp", "/var/tmp");
  // Volumes after home and /tmp, so a volume may sit below either; their paths were checked (volumes/paths.ts).
  (spec.volumes ?? []).forEach((v, i) => a.push(v.readOnly ? "--ro-bind-fd" : "--bind-fd", String(FIRST_VOLUME_FD + i), v.path));
  a.push("--ro-bind-fd", String(fds.node), "/.sbx/node", "--ro-bind-fd", String(fds.supervisor), "/.sbx/supervisor");
  a.push("--ro-bind-fd", String(fds.preload), "/.sbx/node-proxy.cjs", "--ro-bind-fd", String(fds.preloadImpl), "/.sbx/node-proxy-impl.cjs");
  a.push("--bind-fd", String(fds.egress), "/.sbx/run");
  if (spec.runtimes.denoFd !== null) a.push("--ro-bind-fd", String(fds.deno), DENO_PATH);
  a.push("--ro-bind-fd", String(fds.denoRepl), DENO_REPL_DRIVER, "--ro-bind-fd", String(fds.pythonRepl), PYTHON_REPL_DRIVER);
  // The daemon's CA is trusted inside: at the paths the trust variables name, and over the system bundle for tools that read only that.
  a.push("--ro-bind-fd", String(fds.trustBundle), SANDBOX_BUNDLE, "--ro-bind-fd", String(fds.trustCa), SANDBOX_CA, "--ro-bind-fd", String(fds.javaStore), JAVA_TRUST_STORE);
  const system = root ? root.systemBundle : spec.etc!.systemBundle;
  if (system) a.push("--ro-bind-fd", String(fds.trustSystemBundle), system);
  // A root of the sandbox's own stays writable (a snapshot's private layer, or the volume); sbx's parts do not.
  if (root) a.push("--remount-ro", "/.sbx", "--remount-ro", "/sys");
  else a.push("--remount-ro", "/");
  a.push("--chdir", SANDBOX_HOME);
  // The seccomp program reaches the supervisor on its fd: it mounts devpts first, then installs it.
  a.push("/.sbx/supervisor", "--seccomp-fd", String(fds.seccomp), "--ptys", String(spec.ptysPerSandbox));
  if (spec.userns) a.push("--sudo");
  return a;
}

/**
 * The full argv: sbx-launch (one exec) joins the cgroups as root and makes the sandbox the
 * preferred victim of a host-wide OOM (root mode), sets the rlimits and the CPU affinity (the
 * set nproc and availableParallelism read; in root mode a cpuset enforces the same set where the
 * host has the controller), drops to the sandbox's host uid with no supplementary groups (root
 * mode), and execs bwrap.
 */
export function launchArgv(spec: LaunchSpec): string[] {
  const a = [spec.launcherPath];
  for (const file of spec.cgroupProcs) a.push("--cgroup-procs", file);
  if (spec.cgroupDir) a.push("--cgroup-dir", spec.cgroupDir);
  if (spec.hostUid !== null) a.push("--oom-score-adj", "500");
  a.push("--nofile", String(spec.rlimits.nofile));
  if (spec.rlimits.nproc !== null) a.push("--nproc", String(spec.rlimits.nproc));
  if (spec.cpuSet) a.push("--cpus", formatCpuList(spec.cpuSet));
  if (spec.userns) a.push("--userns", `${spec.userns.base}:${spec.userns.count}:${usernsFd(spec)}`);
  if (spec.root) {
    const { view } = spec.root;
    a.push("--root-view", `${view.readOnly ? "ro" : "rw"}:${view.source}:${view.target}`);
    if (view.overlay) a.push("--root-overlay", `${view.overlay.upper}:${view.overlay.work}:${view.overlay.merged}`);
    a.push("--root-fd", String(rootFd(spec)));
  }
  if (spec.hostUid !== null) a.push("--uid", String(spec.hostUid));
  return [...a, "--", spec.bwrapPath, ...bwrapArgs(spec, FD)];
}

/** Starts bwrap for one sandbox; its stdin/stdout become the supervisor channel. */
export function launch(spec: LaunchSpec): ChildProcess {
  const [file, ...args] = launchArgv(spec);
  const stdio: Array<"pipe" | "ignore" | number> = ["pipe", "pipe", "pipe", "pipe", "pipe", "pipe", "pipe", spec.nodeFd, spec.supervisorFd, spec.preloadFd, spec.preloadImplFd, spec.egressDirFd, spec.trustBundleFd, spec.trustSystemBundleFd, spec.trustCaFd, spec.javaStoreFd, "pipe"];
  stdio.push(spec.storage?.homeFd ?? "ignore", spec.storage?.tmpFd ?? "ignore");
  stdio.push(spec.runtimes.denoFd ?? "ignore", spec.runtimes.denoReplFd, spec.runtimes.pythonReplFd, spec.etc?.fd ?? "ignore");
  // Volumes after the fixed fds (FIRST_VOLUME_FD on).
  if (spec.volumes?.length && !spec.storage) throw new Error("volumes need the root mode's storage");
  for (const v of spec.volumes ?? []) stdio.push(v.fd);
  if (spec.root && !spec.userns) throw new Error("a root needs the user namespace sbx-launch makes");
  // (the root's fd, rootFd, is sbx-launch's to open)
  const child = spawn(file!, args, { stdio, env: {} });
  // A bwrap that dies early resets these pipes; that must never take the daemon down with it.
  for (const stream of child.stdio) (stream as NodeJS.EventEmitter | null)?.on("error", () => {});
  const pipes = child.stdio as unknown as Array<NodeJS.WritableStream | null>;
  pipes[FD.passwd]?.end(USER_ETC.passwd);
  pipes[FD.group]?.end(USER_ETC.group);
  pipes[FD.hosts]?.end(USER_ETC.hosts);
  pipes[FD.seccomp]?.end(spec.seccomp);
  pipes[FD.cpusOnline]?.end(`${formatCpuList(spec.cpuSet ?? spec.cpusOnline)}\n`);
  return child;
}

/**
 * Opens the files every sandbox binds read-only. Holding the fds means a rebuilt or upgraded
 * file on disk never changes (or breaks) what running and new sandboxes of this daemon get.
 */
export function openSandboxFiles(paths: SandboxFiles) {
  const nodeFd = openSync(paths.nodePath, "r");
  const supervisorFd = openSync(paths.supervisorPath, "r");
  const preloadFd = openSync(paths.preloadPath, "r");
  const preloadImplFd = openSync(paths.preloadImplPath, "r");
  const runtimes = { denoFd: paths.denoPath ? openSync(paths.denoPath, "r") : null, denoReplFd: openSync(paths.denoReplPath, "r"), pythonReplFd: openSync(paths.pythonReplPath, "r") };
  const all = [nodeFd, supervisorFd, preloadFd, preloadImplFd, runtimes.denoReplFd, runtimes.pythonReplFd, ...(runtimes.denoFd === null ? [] : [runtimes.denoFd])];
  return { nodeFd, supervisorFd, preloadFd, preloadImplFd, runtimes, close: () => all.forEach((fd) => closeSync(fd)) };
}
