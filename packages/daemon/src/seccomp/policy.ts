import { constants } from "node:os";
import { argLow, assemble, DATA_ARCH, DATA_NR, jeq, jge, jset, ld, RET_ALLOW, RET_KILL_PROCESS, ret, retErrno, type Insn } from "./bpf.js";

const E = constants.errno;

/** Syscall numbers for the architectures sbx filters. aarch64 uses the generic table. */
const TABLES = {
  x64: {
    audit: 0xc000003e,
    nr: {
      ioctl: 16, socket: 41, clone: 56, ptrace: 101, syslog: 103, uselib: 134, personality: 135, ustat: 136, sysfs: 139,
      vhangup: 153, pivot_root: 155, _sysctl: 156, adjtimex: 159, acct: 163, settimeofday: 164, mount: 165, umount2: 166,
      swapon: 167, swapoff: 168, reboot: 169, iopl: 172, ioperm: 173, create_module: 174, init_module: 175,
      delete_module: 176, get_kernel_syms: 177, query_module: 178, quotactl: 179, nfsservctl: 180, lookup_dcookie: 212,
      clock_settime: 227, kexec_load: 246, add_key: 248, request_key: 249, keyctl: 250, unshare: 272, perf_event_open: 298,
      fanotify_init: 300, name_to_handle_at: 303, open_by_handle_at: 304, clock_adjtime: 305, setns: 308,
      process_vm_readv: 310, process_vm_writev: 311, kcmp: 312, finit_module: 313, kexec_file_load: 320, bpf: 321,
      userfaultfd: 323, io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427, open_tree: 428, move_mount: 429,
      fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, clone3: 435, pidfd_getfd: 438, mount_setattr: 442, quotactl_fd: 443,
      mbind: 237, set_mempolicy: 238, get_mempolicy: 239, migrate_pages: 256, move_pages: 279,
    } as Record<string, number>,
  },
  arm64: {
    audit: 0xc00000b7,
    nr: {
      ioctl: 29, socket: 198, clone: 220, ptrace: 117, syslog: 116, personality: 92, vhangup: 58, pivot_root: 41,
      adjtimex: 171, acct: 89, settimeofday: 170, mount: 40, umount2: 39, swapon: 224, swapoff: 225, reboot: 142,
      init_module: 105, delete_module: 106, quotactl: 60, nfsservctl: 42, lookup_dcookie: 18, clock_settime: 112,
      kexec_load: 104, add_key: 217, request_key: 218, keyctl: 219, unshare: 97, perf_event_open: 241, fanotify_init: 262,
      name_to_handle_at: 264, open_by_handle_at: 265, clock_adjtime: 266, setns: 268, process_vm_readv: 270,
      process_vm_writev: 271, kcmp: 272, finit_module: 273, kexec_file_load: 294, bpf: 280, userfaultfd: 282,
      io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427, open_tree: 428, move_mount: 429, fsopen: 430,
      fsconfig: 431, fsmount: 432, fspick: 433, clone3: 435, pidfd_getfd: 438, mount_setattr: 442, quotactl_fd: 443,
      mbind: 235, get_mempolicy: 236, set_mempolicy: 237, migrate_pages: 238, move_pages: 239,
    } as Record<string, number>,
  },
} as const;

export type SeccompArch = keyof typeof TABLES;

/**
 * Refused outright with EPERM: what Docker's default profile and Flatpak refuse to
 * unprivileged code — mounts and the new mount API, namespaces, keyrings, bpf, perf,
 * userfaultfd, io_uring, kexec and modules, ptrace and cross-process memory access,
 * NUMA memory policy, clock and system administration.
 */
export const DENIED = [
  "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
  "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
  "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load",
  "init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms", "query_module",
  "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
  "name_to_handle_at", "open_by_handle_at", "fanotify_init", "lookup_dcookie", "quotactl", "quotactl_fd", "nfsservctl",
  "acct", "swapon", "swapoff", "reboot", "syslog", "vhangup", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
  "iopl", "ioperm", "uselib", "ustat", "sysfs", "_sysctl",
  "mbind", "set_mempolicy", "get_mempolicy", "migrate_pages", "move_pages",
] as const;

/** clone flags that create namespaces. */
export const CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080;
export const TIOCSTI = 0x5412;
export const TIOCLINUX = 0x541c;
export const AF_ALG = 38;
export const AF_VSOCK = 40;
/** personality() values Docker allows: PER_LINUX, UNAME26 variants and the query 0xffffffff. */
const PERSONALITY_OK = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** One syscall's check: its body must end in a return. */
function block(nr: number, body: Insn[]): Insn[] {
  return [ld(DATA_NR), jeq(nr, 0, body.length), ...body];
}

/** Builds the seccomp program every sandbox process runs under. */
export function buildPolicy(arch: SeccompArch): Buffer {
  const t = TABLES[arch];
  const nr = (name: string) => t.nr[name];
  const eperm = ret(retErrno(E.EPERM));
  const prog: Insn[] = [
    // Any other ABI (i386, x32 on x86_64) would bypass the numbers below: kill it.
    ld(DATA_ARCH),
    jeq(t.audit, 1, 0),
    ret(RET_KILL_PROCESS),
  ];
  // x32 numbers have bit 30 set; -1 (what some programs probe with) is let through to get ENOSYS.
  if (arch === "x64") prog.push(ld(DATA_NR), jeq(0xffffffff, 2, 0), jge(0x40000000, 0, 1), ret(RET_KILL_PROCESS));

  for (const name of DENIED) if (nr(name) !== undefined) prog.push(...block(nr(name)!, [eperm]));
  // clone3 passes flags in a struct seccomp cannot read: make callers fall back to clone.
  prog.push(...block(nr("clone3")!, [ret(retErrno(E.ENOSYS))]));
  prog.push(...block(nr("clone")!, [ld(argLow(0)), jset(CLONE_NS_FLAGS, 0, 1), eperm, ret(RET_ALLOW)]));
  // Only the low 32 bits of the request: the kernel ignores the rest, so must we.
  prog.push(...block(nr("ioctl")!, [ld(argLow(1)), jeq(TIOCSTI, 0, 1), eperm, jeq(TIOCLINUX, 0, 1), eperm, ret(RET_ALLOW)]));
  prog.push(...block(nr("socket")!, [ld(argLow(0)), jeq(AF_VSOCK, 0, 1), ret(retErrno(E.EAFNOSUPPORT)), jeq(AF_ALG, 0, 1), ret(retErrno(E.EAFNOSUPPORT)), ret(RET_ALLOW)]));
  const personality: Insn[] = [ld(argLow(0))];
  PERSONALITY_OK.forEach((v, i) => personality.push(jeq(v, PERSONALITY_OK.length - i, 0)));
  personality.push(eperm, ret(RET_ALLOW));
  prog.push(...block(nr("personality")!, personality));
  prog.push(ret(RET_ALLOW));
  return assemble(prog);
}

export function hostArch(): SeccompArch {
  if (process.arch === "x64" || process.arch === "arm64") return process.arch;
  throw new Error(`sbx's seccomp filter supports x86_64 and aarch64, not ${process.arch}`);
}
