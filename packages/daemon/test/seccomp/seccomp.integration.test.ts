import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPolicy, DENIED } from "../../src/seccomp/policy.js";
import { Client, Sandbox } from "@sbx/client";
import { useSandbox } from "../helpers/fixtures.js";
import { makeRoot, ROOT_CAPS_HEX } from "../helpers/images.js";

/**
 * SECURITY.md "Escaping the sandbox", seccomp: a program inside a real sandbox tries each
 * refused call and reports the errno it got. Every value below is written out here rather
 * than imported, so a wrong constant in the policy cannot make its own test agree with it.
 *
 * A filter that answers EPERM proves nothing for a call the kernel would refuse with EPERM
 * anyway, so each probe passes arguments the kernel rejects some other way (a bad pointer,
 * an unknown flag, fd -1) before any permission check. A control run of the same probe in a
 * bare bwrap with the sandbox's namespaces but no filter shows they do reach the kernel and get
 * that other answer.
 * The few calls whose permission check comes first are covered by running the compiled BPF
 * program itself (the emulator at the bottom).
 */

/** x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl) of every syscall sbx refuses. */
const X64: Record<string, number> = {
  mount: 165, umount2: 166, pivot_root: 155, open_tree: 428, move_mount: 429, fsopen: 430, fsconfig: 431, fsmount: 432,
  fspick: 433, mount_setattr: 442, unshare: 272, setns: 308, keyctl: 250, add_key: 248, request_key: 249, bpf: 321,
  perf_event_open: 298, userfaultfd: 323, io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427, kexec_load: 246,
  kexec_file_load: 320, init_module: 175, finit_module: 313, delete_module: 176, create_module: 174, get_kernel_syms: 177,
  query_module: 178, ptrace: 101, process_vm_readv: 310, process_vm_writev: 311, kcmp: 312, pidfd_getfd: 438,
  name_to_handle_at: 303, open_by_handle_at: 304, fanotify_init: 300, lookup_dcookie: 212, quotactl: 179, quotactl_fd: 443,
  nfsservctl: 180, acct: 163, swapon: 167, swapoff: 168, reboot: 169, syslog: 103, vhangup: 153, settimeofday: 164,
  clock_settime: 227, clock_adjtime: 305, adjtimex: 159, iopl: 172, ioperm: 173, uselib: 134, ustat: 136, sysfs: 139, _sysctl: 156,
  mbind: 237, set_mempolicy: 238, get_mempolicy: 239, migrate_pages: 256, move_pages: 279,
};

const BAD = 1; // an address nothing maps: the kernel faults copying from it
const FLAG = 0x40000000; // a flag bit none of these calls defines
const NOPID = 0x3ffffff0; // a pid that does not exist
const U32 = 0xffffffff;

/**
 * Arguments for each refused syscall, chosen so that the kernel, reached without the filter,
 * fails the call with something other than EPERM (shown by the control run). Nothing here can
 * succeed, even on a host with no filter at all.
 */
const ARGS: Record<string, number[]> = {
  mount: [BAD, BAD, BAD, 0, 0], // EFAULT
  umount2: [BAD, FLAG], // EINVAL: unknown flag
  pivot_root: [BAD, BAD],
  open_tree: [-1, BAD, FLAG], // EINVAL
  move_mount: [-1, BAD, -1, BAD, FLAG],
  fsopen: [BAD, FLAG],
  fsconfig: [-1, 0, 0, 0, 0], // EINVAL/EBADF
  fsmount: [-1, FLAG, 0],
  fspick: [-1, BAD, FLAG],
  mount_setattr: [-1, BAD, FLAG, 0, 0], // EINVAL
  unshare: [1], // EINVAL: not a CLONE_* flag unshare knows
  setns: [-1, 0], // EBADF
  keyctl: [99999, 0, 0, 0, 0], // EOPNOTSUPP
  add_key: [BAD, BAD, 0, 0, 0], // EFAULT
  request_key: [BAD, BAD, BAD, 0], // EFAULT
  bpf: [99999, 0, 0], // EINVAL
  perf_event_open: [0, 0, -1, -1, FLAG], // EINVAL
  userfaultfd: [1 | FLAG], // EINVAL (UFFD_USER_MODE_ONLY passes the sysctl check)
  io_uring_setup: [1, BAD], // EFAULT
  io_uring_enter: [-1, 0, 0, 0, 0, 0], // EBADF
  io_uring_register: [-1, 0, 0, 0], // EBADF/EINVAL
  kexec_load: [0, 0, 0, U32],
  kexec_file_load: [-1, -1, 0, 0, U32],
  init_module: [0, 0, BAD],
  finit_module: [-1, BAD, U32],
  delete_module: [BAD, 0],
  create_module: [0, 0], // ENOSYS: gone from the kernel, still numbered
  get_kernel_syms: [0],
  query_module: [0, 0, 0, 0, 0],
  ptrace: [16 /* PTRACE_ATTACH */, NOPID, 0, 0], // ESRCH
  process_vm_readv: [NOPID, 0, 0, 0, 0, 1], // EINVAL: flags must be 0
  process_vm_writev: [NOPID, 0, 0, 0, 0, 1],
  kcmp: [NOPID, NOPID, 0, 0, 0], // ESRCH
  pidfd_getfd: [-1, 0, 0], // EBADF
  name_to_handle_at: [-1, BAD, 0, 0, FLAG], // EINVAL
  open_by_handle_at: [-1, BAD, 0], // EFAULT/EBADF
  fanotify_init: [0x800 /* FAN_REPORT_NAME without FAN_REPORT_DIR_FID */, 0], // EINVAL
  lookup_dcookie: [0, 0, 0],
  quotactl: [U32, 0, 0, 0], // EINVAL
  quotactl_fd: [-1, U32, 0, 0], // EBADF/EINVAL
  nfsservctl: [0, 0, 0],
  acct: [BAD],
  swapon: [BAD, U32], // EINVAL: unknown swap flags
  swapoff: [BAD],
  reboot: [0, 0, 0, 0], // bad magic, and no CAP_SYS_BOOT anyway
  syslog: [10 /* SYSLOG_ACTION_SIZE_BUFFER */, 0, 0],
  vhangup: [],
  settimeofday: [BAD, 0], // EFAULT
  clock_settime: [999, BAD], // EINVAL: no such clock
  clock_adjtime: [999, BAD],
  adjtimex: [BAD], // EFAULT
  iopl: [4], // EINVAL
  ioperm: [0xffff, 0xffff, 1], // EINVAL
  uselib: [BAD],
  ustat: [0, BAD],
  sysfs: [99], // EINVAL
  _sysctl: [BAD],
  mbind: [BAD, 4096, 0, 0, 0, 0], // EINVAL: start not page-aligned
  set_mempolicy: [99, 0, 0], // EINVAL: no such mode
  get_mempolicy: [0, 0, 0, 0, FLAG], // EINVAL: unknown flags
  migrate_pages: [NOPID, 1, BAD, BAD], // EFAULT/ESRCH
  move_pages: [NOPID, 1, BAD, 0, BAD, FLAG], // EINVAL: unknown flags
};

/**
 * Syscalls whose permission check comes before any argument the caller controls, so an
 * unprivileged caller gets EPERM with or without the filter. The BPF emulator covers them.
 */
const KERNEL_REFUSES_FIRST = ["pivot_root", "move_mount", "fsopen", "fsmount", "fspick", "acct", "swapoff", "reboot", "vhangup"];
/** EPERM without the filter only on hosts that set a sysctl (kernel.dmesg_restrict, unprivileged_bpf_disabled, io_uring_disabled). */
const HOST_SYSCTL_DEPENDENT = ["syslog", "bpf", "io_uring_setup"];

/**
 * The probe. "denied" mode runs only the table above (safe anywhere, also unconfined);
 * "full" mode adds the argument-dependent rules and the things that must keep working.
 */
const PROBE = String.raw`
import ctypes, errno, json, os, signal, socket, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
M64 = (1 << 64) - 1

def raw(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a & M64) for a in args])
    return r, ctypes.get_errno()

def sc(nr, *args):
    r, e = raw(nr, *args)
    return errno.errorcode.get(e, str(e)) if r == -1 else "ok"

class Once(dict):
    def __setitem__(self, k, v):
        if k in self:
            raise KeyError("probe %s reported twice" % k)
        dict.__setitem__(self, k, v)

mode, spec = sys.argv[1], json.load(open(sys.argv[2]))
out = Once()
for name, (nr, args) in spec["denied"].items():
    out[name] = sc(nr, *args)

if mode == "full":
    status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
    for k in ("Seccomp", "Seccomp_filters", "NoNewPrivs", "CapEff"):
        out["status." + k] = status.get(k, "").strip()

    CLONE, CLONE3, UNSHARE, IOCTL, SOCKET, PERSONALITY, PTRACE = 56, 435, 272, 16, 41, 135, 101
    SIGCHLD, CLONE_THREAD = 17, 0x10000
    NS = {"NEWNS": 0x20000, "NEWCGROUP": 0x2000000, "NEWUTS": 0x4000000, "NEWIPC": 0x8000000,
          "NEWUSER": 0x10000000, "NEWPID": 0x20000000, "NEWNET": 0x40000000, "NEWTIME": 0x80}

    def clone(flags):
        r, e = raw(CLONE, flags, 0, 0, 0, 0)
        if r == 0:
            os._exit(0)  # the filter let a namespaced child through: leave at once
        if r > 0:
            os.waitpid(r, 0)
            return "ok"
        return errno.errorcode.get(e, str(e))

    out["clone3"] = sc(CLONE3, 0, 0)  # without the filter: EINVAL (size 0)
    out["clone.NEWUSER|SIGCHLD"] = clone(NS["NEWUSER"] | SIGCHLD)
    out["clone.NEWNS|SIGCHLD"] = clone(NS["NEWNS"] | SIGCHLD)
    # With CLONE_THREAD but no CLONE_SIGHAND the kernel answers EINVAL before making anything,
    # so only the filter can turn these into EPERM: one per namespace flag.
    for k, v in NS.items():
        out["clone.THREAD|" + k] = clone(v | CLONE_THREAD | SIGCHLD)
    out["clone.THREAD"] = clone(CLONE_THREAD | SIGCHLD)  # no namespace flag: the kernel's own EINVAL
    out["clone.SIGCHLD"] = clone(SIGCHLD)  # a plain fork through raw clone
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    out["fork"] = "exit %d" % os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    out["unshare.NEWUSER"] = sc(UNSHARE, NS["NEWUSER"])  # without the filter: ENOSPC (--disable-userns)
    out["unshare.NEWNS"] = sc(UNSHARE, NS["NEWNS"])
    out["unshare.0"] = sc(UNSHARE, 0)  # a no-op the kernel would allow

    ch = ctypes.c_char(b"x")
    cp = ctypes.addressof(ch)
    null = os.open("/dev/null", os.O_RDWR)
    out["ioctl.stdin.TIOCSTI"] = sc(IOCTL, 0, 0x5412, cp)
    out["ioctl.null.TIOCSTI"] = sc(IOCTL, null, 0x5412, cp)
    out["ioctl.null.TIOCSTI|1<<32"] = sc(IOCTL, null, 0x100005412, cp)
    out["ioctl.null.TIOCSTI|0xffffffff<<32"] = sc(IOCTL, null, 0xffffffff00005412, cp)
    out["ioctl.null.TIOCLINUX"] = sc(IOCTL, null, 0x541c, cp)
    out["ioctl.null.TIOCLINUX|1<<32"] = sc(IOCTL, null, 0x10000541c, cp)
    winsz = ctypes.create_string_buffer(8)
    out["ioctl.null.TIOCGWINSZ"] = sc(IOCTL, null, 0x5413, ctypes.addressof(winsz))
    r, w = os.pipe()
    os.write(w, b"abc")
    n = ctypes.c_int(0)
    res = sc(IOCTL, r, 0x541b, ctypes.addressof(n))  # FIONREAD
    out["ioctl.pipe.FIONREAD"] = "%s %d" % (res, n.value)

    AF_VSOCK, AF_ALG = 40, 38
    out["socket.VSOCK"] = sc(SOCKET, AF_VSOCK, socket.SOCK_STREAM, 0)
    out["socket.ALG"] = sc(SOCKET, AF_ALG, socket.SOCK_SEQPACKET, 0)
    # An impossible type makes the kernel answer EINVAL before it looks at the family.
    out["socket.VSOCK.badtype"] = sc(SOCKET, AF_VSOCK, 15, 0)
    out["socket.ALG.badtype"] = sc(SOCKET, AF_ALG, 15, 0)
    out["socket.VSOCK|1<<32"] = sc(SOCKET, AF_VSOCK | (1 << 32), 15, 0)  # the kernel reads an int
    try:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0)); srv.listen(1)
        c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
        c.sendall(b"ping"); out["socket.INET"] = a.recv(4).decode()
    except OSError as e:
        out["socket.INET"] = errno.errorcode.get(e.errno, str(e))
    try:
        x, y = socket.socketpair(socket.AF_UNIX)
        x.sendall(b"pong"); out["socket.UNIX"] = y.recv(4).decode()
    except OSError as e:
        out["socket.UNIX"] = errno.errorcode.get(e.errno, str(e))

    def pers(v):
        r, e = raw(PERSONALITY, v)
        return errno.errorcode.get(e, str(e)) if r == -1 else "ok %#x" % r
    out["personality.READ_IMPLIES_EXEC"] = pers(0x0400000)
    out["personality.ADDR_NO_RANDOMIZE"] = pers(0x0040000)
    out["personality.query"] = pers(0xffffffff)
    out["personality.LINUX32"] = pers(0x8)
    out["personality.UNAME26"] = pers(0x20000)
    out["personality.back"] = pers(0x0)

    child = subprocess.Popen(["sleep", "30"])
    time.sleep(0.1)
    r, e = raw(PTRACE, 16, child.pid, 0, 0)  # PTRACE_ATTACH to our own child: the kernel would allow it
    if r == 0:
        raw(PTRACE, 17, child.pid, 0, 0)
    out["ptrace.ATTACH.child"] = "ok" if r == 0 else errno.errorcode.get(e, str(e))
    child.kill(); child.wait()

    # Realistic calls an unprivileged process may make when nothing filters it.
    keep = [ctypes.create_string_buffer(s) for s in (b"none", b"/tmp", b"tmpfs")]
    none, tmp, tmpfs = (ctypes.addressof(b) for b in keep)
    out["mount.tmpfs"] = sc(165, none, tmp, tmpfs, 0, 0)
    out["keyctl.GET_KEYRING_ID"] = sc(250, 0, -3, 1, 0, 0)  # KEY_SPEC_SESSION_KEYRING, create
    out["userfaultfd.USER_MODE_ONLY"] = sc(323, 1 | os.O_CLOEXEC)
    params = ctypes.create_string_buffer(120)
    out["io_uring_setup.1"] = sc(425, 1, ctypes.addressof(params))
    out["fsopen.tmpfs"] = sc(430, tmpfs, 0)
    out["open_tree.CLONE"] = sc(428, -100, tmp, 1)  # AT_FDCWD, OPEN_TREE_CLONE
    out["move_mount.tmp"] = sc(429, -100, tmp, -100, tmp, 0)
    attr = ctypes.create_string_buffer(32)
    out["mount_setattr.tmp"] = sc(442, -100, tmp, 0, ctypes.addressof(attr), 32)
    bpf_attr = ctypes.create_string_buffer(128)
    out["bpf.MAP_CREATE"] = sc(321, 0, ctypes.addressof(bpf_attr), 128)
    # A software clock counting only our own user time: allowed even at perf_event_paranoid 2.
    perf_attr = ctypes.create_string_buffer(128)
    ctypes.memmove(perf_attr, (1).to_bytes(4, "little") + (64).to_bytes(4, "little"), 8)  # PERF_TYPE_SOFTWARE, PERF_ATTR_SIZE_VER0
    perf_attr[40] = 0x61  # disabled, exclude_kernel, exclude_hv
    out["perf_event_open.self"] = sc(298, ctypes.addressof(perf_attr), 0, -1, -1, 0)

    # The x32 ABI (syscall numbers with bit 30) would dodge every rule above: it kills.
    x32 = subprocess.run([sys.executable, "-c",
        "import ctypes; l = ctypes.CDLL(None); l.syscall.restype = ctypes.c_long; print(l.syscall(ctypes.c_long(0x40000000 + 39)))"],
        capture_output=True)
    out["x32.getpid"] = "signal %s" % signal.Signals(-x32.returncode).name if x32.returncode < 0 else "exit %d" % x32.returncode

print(json.dumps(out))
`;

const spec = () => JSON.stringify({ denied: Object.fromEntries(DENIED.map((n) => [n, [X64[n], ARGS[n]]])) });

beforeAll(() => {
  if (process.arch !== "x64") throw new Error("these probes use x86_64 syscall numbers");
  const missing = DENIED.filter((n) => X64[n] === undefined || ARGS[n] === undefined);
  if (missing.length) throw new Error(`DENIED gained ${missing.join(", ")}: add its x86_64 number and probe arguments here`);
});
const { daemon, sb } = useSandbox();
let inside: Record<string, string>;
/** The same probe run as uid 0 of a sandbox booted from an image (spawn's sudo): seccomp binds root as it binds the user. */
let insideRoot: Record<string, string>;
let rootSb: Sandbox | undefined;
afterAll(async () => {
  await rootSb?.kill().catch(() => {});
});
let control: Record<string, string>;
let controlError: Error | undefined;

/**
 * The same probe without the filter: in a bare bwrap with the sandbox's namespaces, --disable-userns
 * and --cap-drop ALL but no --seccomp, as an unprivileged user (nobody, when the tests run as root).
 */
function runControl(): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), "sbx-seccomp-control-"));
  try {
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, "probe.py"), PROBE, { mode: 0o644 });
    writeFileSync(join(dir, "spec.json"), spec(), { mode: 0o644 });
    const bwrap = [
      "bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup",
      "--uid", "1000", "--gid", "1000", "--die-with-parent", "--new-session", "--disable-userns", "--cap-drop", "ALL",
      "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--ro-bind", dir, "/tmp/probe",
      "/usr/bin/python3", "/tmp/probe/probe.py", "full", "/tmp/probe/spec.json",
    ];
    const drop = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"];
    const argv = process.getuid?.() === 0 ? ["setpriv", ...drop, ...bwrap] : bwrap;
    return JSON.parse(execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 20_000 }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the probe in `box`, as its user or (sudo) as its uid 0. */
async function probe(box: Sandbox, sudo: boolean): Promise<Record<string, string>> {
  await box.fs.writeTextFile("probe.py", PROBE);
  await box.fs.writeTextFile("spec.json", spec());
  const r = await (await box.spawn("python3", { args: ["probe.py", "full", "spec.json"], sudo })).output();
  if (r.status.code !== 0) throw new Error(`the probe failed inside the sandbox (${JSON.stringify(r.status)}): ${r.stderrText}`);
  return JSON.parse(r.stdoutText!);
}

beforeAll(async () => {
  inside = await probe(sb, false);
  const { snapshot } = await makeRoot(new Client(daemon.opts), daemon.opts, "seccomp", { python: true });
  rootSb = await Sandbox.create({ ...daemon.opts, root: snapshot });
  insideRoot = await probe(rootSb, true);
  try {
    control = runControl();
  } catch (e) {
    controlError = e as Error; // fails the two control tests only
  }
});

/** Who runs the probe: the sandbox's user, and uid 0 of a sandbox booted from an image (what its root may keep: launcher.ts ROOT_CAPS). */
const AS = [
  { who: "as the sandbox's user", out: () => inside, capEff: "0000000000000000", control: true },
  { who: "as uid 0 of a sandbox booted from an image (sudo)", out: () => insideRoot, capEff: ROOT_CAPS_HEX, control: false },
];

for (const as of AS) describe(`seccomp inside a sandbox, ${as.who}`, () => {
  it("every process runs in filter mode with no_new_privs and no capability but its own", () => {
    expect(as.out()["status.Seccomp"]).toBe("2");
    expect(Number(as.out()["status.Seccomp_filters"])).toBeGreaterThanOrEqual(1);
    expect(as.out()["status.NoNewPrivs"]).toBe("1");
    expect(as.out()["status.CapEff"]).toBe(as.capEff);
  });

  it("every syscall in DENIED answers EPERM", () => {
    const got = Object.fromEntries(DENIED.map((n) => [n, as.out()[n]]));
    expect(got).toEqual(Object.fromEntries(DENIED.map((n) => [n, "EPERM"])));
  });

  if (as.control) {
    it("control: without the filter the DENIED probes reach the kernel and fail some other way", () => {
      if (controlError) throw new Error(`the unfiltered control run (bwrap without --seccomp) failed: ${controlError.message}`);
      expect(control["status.Seccomp"]).toBe("0");
      // So the EPERMs above are the filter's. Only where the kernel checks permission first is EPERM its own answer too.
      const refusedAnyway = DENIED.filter((n) => control[n] === "EPERM");
      expect(refusedAnyway.filter((n) => !KERNEL_REFUSES_FIRST.includes(n) && !HOST_SYSCTL_DEPENDENT.includes(n))).toEqual([]);
      for (const n of DENIED) expect(control[n], n).toMatch(/^(E[A-Z0-9]+|ok)$/);
    });

    it("control: without the filter the argument rules' probes get another answer; what must work works the same", () => {
      if (controlError) throw new Error(`the unfiltered control run (bwrap without --seccomp) failed: ${controlError.message}`);
      const MUST_DIFFER = [
        "clone3", "clone.NEWUSER|SIGCHLD", "unshare.NEWUSER", "unshare.0",
        ...["NEWNS", "NEWCGROUP", "NEWUTS", "NEWIPC", "NEWUSER", "NEWPID", "NEWNET", "NEWTIME"].map((f) => `clone.THREAD|${f}`),
        "ioctl.stdin.TIOCSTI", "ioctl.null.TIOCSTI", "ioctl.null.TIOCSTI|1<<32", "ioctl.null.TIOCSTI|0xffffffff<<32", "ioctl.null.TIOCLINUX", "ioctl.null.TIOCLINUX|1<<32",
        "socket.VSOCK.badtype", "socket.ALG.badtype", "socket.VSOCK|1<<32",
        "personality.READ_IMPLIES_EXEC", "personality.ADDR_NO_RANDOMIZE", "x32.getpid",
      ];
      expect(MUST_DIFFER.filter((k) => control[k] === undefined || control[k] === inside[k])).toEqual([]);
      const SAME = ["clone.THREAD", "clone.SIGCHLD", "fork", "ioctl.null.TIOCGWINSZ", "ioctl.pipe.FIONREAD", "socket.INET", "socket.UNIX"];
      expect(Object.fromEntries(SAME.map((k) => [k, control[k]]))).toEqual(Object.fromEntries(SAME.map((k) => [k, inside[k]])));
    });

  }

  it("the mount family and the new mount API, called for real, answer EPERM", () => {
    for (const k of ["mount.tmpfs", "fsopen.tmpfs", "open_tree.CLONE", "move_mount.tmp", "mount_setattr.tmp"]) expect(as.out()[k], k).toBe("EPERM");
  });

  it("keyctl, bpf, perf_event_open, userfaultfd and io_uring_setup, called for real, answer EPERM", () => {
    // keyctl, userfaultfd (user-mode only) and io_uring_setup would all succeed for an unprivileged process.
    for (const k of ["keyctl.GET_KEYRING_ID", "bpf.MAP_CREATE", "perf_event_open.self", "userfaultfd.USER_MODE_ONLY", "io_uring_setup.1"]) expect(as.out()[k], k).toBe("EPERM");
  });

  it("clone3 answers ENOSYS, so libc falls back to clone", () => {
    expect(as.out().clone3).toBe("ENOSYS");
  });

  it("clone with any namespace flag answers EPERM; a plain fork still works", () => {
    expect(as.out()["clone.NEWUSER|SIGCHLD"]).toBe("EPERM");
    expect(as.out()["clone.NEWNS|SIGCHLD"]).toBe("EPERM");
    for (const flag of ["NEWNS", "NEWCGROUP", "NEWUTS", "NEWIPC", "NEWUSER", "NEWPID", "NEWNET", "NEWTIME"]) expect(as.out()[`clone.THREAD|${flag}`], flag).toBe("EPERM");
    expect(as.out()["clone.THREAD"]).toBe("EINVAL"); // the kernel's own answer: the filter let it through
    expect(as.out()["clone.SIGCHLD"]).toBe("ok");
    expect(as.out().fork).toBe("exit 7");
  });

  it("unshare answers EPERM whatever the flags (CLONE_NEWUSER would otherwise be ENOSPC)", () => {
    expect(as.out()["unshare.NEWUSER"]).toBe("EPERM");
    expect(as.out()["unshare.NEWNS"]).toBe("EPERM");
    expect(as.out()["unshare.0"]).toBe("EPERM");
  });

  it("TIOCSTI and TIOCLINUX answer EPERM, with or without high bits in the request; other ioctls pass", () => {
    for (const k of ["ioctl.stdin.TIOCSTI", "ioctl.null.TIOCSTI", "ioctl.null.TIOCSTI|1<<32", "ioctl.null.TIOCSTI|0xffffffff<<32", "ioctl.null.TIOCLINUX", "ioctl.null.TIOCLINUX|1<<32"]) {
      expect(as.out()[k], k).toBe("EPERM");
    }
    expect(as.out()["ioctl.null.TIOCGWINSZ"]).toBe("ENOTTY"); // reached the driver: /dev/null is no tty
    expect(as.out()["ioctl.pipe.FIONREAD"]).toBe("ok 3");
  });

  it("AF_VSOCK and AF_ALG sockets answer EAFNOSUPPORT; AF_INET and AF_UNIX work", () => {
    for (const k of ["socket.VSOCK", "socket.ALG", "socket.VSOCK.badtype", "socket.ALG.badtype", "socket.VSOCK|1<<32"]) expect(as.out()[k], k).toBe("EAFNOSUPPORT");
    expect(as.out()["socket.INET"]).toBe("ping");
    expect(as.out()["socket.UNIX"]).toBe("pong");
  });

  it("personality allows only PER_LINUX, PER_LINUX32, UNAME26 and the query", () => {
    expect(as.out()["personality.READ_IMPLIES_EXEC"]).toBe("EPERM");
    expect(as.out()["personality.ADDR_NO_RANDOMIZE"]).toBe("EPERM");
    expect(as.out()["personality.query"]).toBe("ok 0x0");
    expect(as.out()["personality.LINUX32"]).toBe("ok 0x0");
    expect(as.out()["personality.UNAME26"]).toBe("ok 0x8");
    expect(as.out()["personality.back"]).toBe("ok 0x20000");
  });

  it("ptrace of another process, even one's own child, answers EPERM", () => {
    expect(as.out()["ptrace.ATTACH.child"]).toBe("EPERM");
  });

  it("the x32 ABI kills the process", () => {
    expect(as.out()["x32.getpid"]).toBe("signal SIGSYS");
  });
});

/** Runs a classic-BPF seccomp program (the subset the builder emits) on one seccomp_data. */
function runBpf(prog: Buffer, arch: number, nr: number, args: Array<number | bigint> = []): number {
  const data = Buffer.alloc(64);
  data.writeInt32LE(nr, 0);
  data.writeUInt32LE(arch, 4);
  args.forEach((a, i) => data.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 16 + 8 * i));
  let acc = 0;
  for (let pc = 0, steps = 0; steps < 5000; steps++) {
    if (pc * 8 >= prog.length) throw new Error(`fell off the program at ${pc}`);
    const code = prog.readUInt16LE(pc * 8);
    const jt = prog.readUInt8(pc * 8 + 2);
    const jf = prog.readUInt8(pc * 8 + 3);
    const k = prog.readUInt32LE(pc * 8 + 4);
    pc++;
    switch (code) {
      case 0x20: // ld [k]
        if (k % 4 !== 0 || k + 4 > 64) throw new Error(`bad load offset ${k}`);
        acc = data.readUInt32LE(k);
        break;
      case 0x15: pc += acc === k ? jt : jf; break; // jeq
      case 0x35: pc += acc >= k ? jt : jf; break; // jge
      case 0x45: pc += (acc & k) !== 0 ? jt : jf; break; // jset
      case 0x06: return k; // ret
      default: throw new Error(`unexpected BPF opcode ${code.toString(16)}`);
    }
  }
  throw new Error("no return");
}

const AUDIT_X86_64 = 0xc000003e;
const AUDIT_AARCH64 = 0xc00000b7;
const AUDIT_I386 = 0x40000003;
const ALLOW = 0x7fff0000;
const KILL_PROCESS = 0x80000000;
const ERRNO = (e: number) => (0x00050000 | e) >>> 0;
const EPERM = ERRNO(1);
const ENOSYS = ERRNO(38);
const EAFNOSUPPORT = ERRNO(97);

describe("the BPF program", () => {
  for (const [arch, audit] of [["x64", AUDIT_X86_64], ["arm64", AUDIT_AARCH64]] as const) {
    it(`${arch}: whole instructions, arch check first, RET ALLOW last`, () => {
      const prog = buildPolicy(arch);
      expect(Buffer.isBuffer(prog)).toBe(true);
      expect(prog.length % 8).toBe(0);
      expect(prog.length / 8).toBeGreaterThan(10);
      expect(prog.length / 8).toBeLessThanOrEqual(4096);
      const insn = (i: number) => [prog.readUInt16LE(i * 8), prog.readUInt8(i * 8 + 2), prog.readUInt8(i * 8 + 3), prog.readUInt32LE(i * 8 + 4)];
      expect(insn(0)).toEqual([0x20, 0, 0, 4]); // ld [arch]
      expect(insn(1)).toEqual([0x15, 1, 0, audit]); // jeq audit, skip the kill
      expect(insn(2)).toEqual([0x06, 0, 0, KILL_PROCESS]);
      expect(insn(prog.length / 8 - 1)).toEqual([0x06, 0, 0, ALLOW]);
      // Any other ABI dies.
      expect(runBpf(prog, AUDIT_I386, 21)).toBe(KILL_PROCESS);
      expect(runBpf(prog, arch === "x64" ? AUDIT_AARCH64 : AUDIT_X86_64, 0)).toBe(KILL_PROCESS);
    });
  }

  it("x64: refuses every DENIED syscall (also those the kernel would refuse anyway) and kills x32", () => {
    const prog = buildPolicy("x64");
    for (const n of DENIED) expect(runBpf(prog, AUDIT_X86_64, X64[n]!, ARGS[n]), n).toBe(EPERM);
    for (const [n, nr] of Object.entries({ read: 0, write: 1, openat: 257, execve: 59, fork: 57, getpid: 39, mmap: 9, futex: 202, wait4: 61, setsid: 112 })) {
      expect(runBpf(prog, AUDIT_X86_64, nr), n).toBe(ALLOW);
    }
    expect(runBpf(prog, AUDIT_X86_64, 0x40000000 + 39)).toBe(KILL_PROCESS);
    expect(runBpf(prog, AUDIT_X86_64, 0x40000000 + 165)).toBe(KILL_PROCESS);
  });

  it("x64: argument rules", () => {
    const prog = buildPolicy("x64");
    const x = (nr: number, args: Array<number | bigint>) => runBpf(prog, AUDIT_X86_64, nr, args);
    expect(x(435, [0, 88])).toBe(ENOSYS);
    expect(x(56, [17])).toBe(ALLOW); // fork via clone
    expect(x(56, [0x003d0f00])).toBe(ALLOW); // pthread_create's flags
    for (const f of [0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000, 0x80]) expect(x(56, [f | 17]), f.toString(16)).toBe(EPERM);
    expect(x(16, [0, 0x5412])).toBe(EPERM);
    expect(x(16, [0, 0x100005412n])).toBe(EPERM);
    expect(x(16, [0, 0xffffffff00005412n])).toBe(EPERM);
    expect(x(16, [0, 0x541c])).toBe(EPERM);
    expect(x(16, [0, 0x5413])).toBe(ALLOW);
    expect(x(16, [0x5412, 0x5401])).toBe(ALLOW); // the request, not the fd, is compared
    expect(x(41, [40, 1])).toBe(EAFNOSUPPORT);
    expect(x(41, [38, 5])).toBe(EAFNOSUPPORT);
    expect(x(41, [0x100000028n, 1])).toBe(EAFNOSUPPORT);
    for (const af of [1, 2, 10, 16]) expect(x(41, [af, 1]), `AF ${af}`).toBe(ALLOW);
    for (const p of [0, 8, 0x20000, 0x20008, 0xffffffff]) expect(x(135, [p]), p.toString(16)).toBe(ALLOW);
    for (const p of [0x400000, 0x40000, 0x0800000, 0x1, 0x20001]) expect(x(135, [p]), p.toString(16)).toBe(EPERM);
  });

  it("arm64: uses the generic syscall table", () => {
    const prog = buildPolicy("arm64");
    const a = (nr: number, args: Array<number | bigint> = []) => runBpf(prog, AUDIT_AARCH64, nr, args);
    const generic = { mount: 40, umount2: 39, pivot_root: 41, unshare: 97, setns: 268, keyctl: 219, bpf: 280, ptrace: 117, perf_event_open: 241, userfaultfd: 282, io_uring_setup: 425, fsopen: 430, mount_setattr: 442, kexec_load: 104, init_module: 105 };
    for (const [n, nr] of Object.entries(generic)) expect(a(nr), n).toBe(EPERM);
    expect(a(435)).toBe(ENOSYS);
    expect(a(220, [0x10000000 | 17])).toBe(EPERM);
    expect(a(220, [17])).toBe(ALLOW);
    expect(a(29, [0, 0x100005412n])).toBe(EPERM);
    expect(a(198, [40, 1])).toBe(EAFNOSUPPORT);
    expect(a(92, [0x400000])).toBe(EPERM);
    for (const [n, nr] of Object.entries({ read: 63, write: 64, openat: 56, execve: 221, getpid: 172 })) expect(a(nr), n).toBe(ALLOW);
  });
});
