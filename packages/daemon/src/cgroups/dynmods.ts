import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { readMountinfo, unescapeMountPath } from "../util/mountinfo.js";

/**
 * The cgroup join on the start path. sbx-launch moves itself into the sandbox's cgroup by writing
 * its cgroup.procs. By default the kernel guards every such move with a global percpu rwsem whose
 * write side waits for an RCU grace period when no other move happened just before: the first
 * join after a pause costs ~7.5 ms here (against ~0.08 ms with the option below), on the create
 * path of every cold sandbox and of every warm-pool refill.
 *
 * The cgroup2 mount option `favordynmods` (kernel ≥ 6.0) keeps that rwsem in its reader-slow
 * mode, so moves never wait for a grace period. From kernel 6.18 (commit 0568f89d4fb8) it also
 * makes a cgroup.procs write take only the moved process's own threadgroup lock. The price is
 * fork and exit taking the rwsem's slower reader path: the kernel's default for every host from
 * 4.4 to 5.19. The option is host-wide, so it is the operator's `cgroupFavorDynmods` setting.
 */
export interface Cgroup2Mount {
  mountPoint: string;
  /** The file system's own options (mountinfo's super options, without rw/ro), e.g. nsdelegate. */
  options: string[];
}

/** The host's cgroup2 mount (the unified hierarchy of a v2 or hybrid host), or null on a pure v1 host. */
export function findCgroup2Mount(mountinfo: string): Cgroup2Mount | null {
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const [fstype, , superOptions = ""] = line.slice(sep + 3).split(" ");
    if (fstype !== "cgroup2") continue;
    const mountPoint = unescapeMountPath(line.slice(0, sep).split(" ")[4] ?? "");
    return { mountPoint, options: superOptions.split(",").filter((o) => o && o !== "rw" && o !== "ro") };
  }
  return null;
}

/** What the daemon's start log says about the cgroup join's cost, and what `sbx doctor` shows. */
export interface DynmodsState {
  on: boolean;
  detail: string;
}

export function dynmodsState(mountinfo = readMountinfo()): DynmodsState {
  const mount = findCgroup2Mount(mountinfo);
  if (!mount) return { on: false, detail: "no cgroup2 mount (a pure cgroup v1 host): boot with cgroup_favordynmods=true for fast cgroup joins" };
  return mount.options.includes("favordynmods")
    ? { on: true, detail: `favordynmods is on (${mount.mountPoint}): a sandbox joins its cgroup without waiting for an RCU grace period` }
    : { on: false, detail: `favordynmods is off (${mount.mountPoint}): each cold sandbox start can wait ~8 ms for an RCU grace period to join its cgroup` };
}

const execFileAsync = promisify(execFile);

/**
 * Turns favordynmods on by remounting the cgroup2 mount with the options it has plus this one
 * (a cgroup2 remount sets exactly the options it is given, so leaving one out would clear it,
 * nsdelegate included), then checks the mount again: every option it had must still be there.
 * Returns what happened, for the log; throws only if an option was lost and could not be put back.
 */
export async function enableFavorDynmods(run: (args: string[]) => Promise<void> = mountCmd, read: () => string = readMountinfo): Promise<DynmodsState> {
  const before = findCgroup2Mount(read());
  if (!before) return dynmodsState(read());
  if (before.options.includes("favordynmods")) return dynmodsState(read());
  const remount = (options: string[]) => run(["-o", ["remount", ...options].join(","), before.mountPoint]);
  try {
    await remount([...before.options, "favordynmods"]);
  } catch (err) {
    return { on: false, detail: `could not turn favordynmods on (${before.mountPoint}): ${(err as Error).message.trim().split("\n").pop()}` };
  }
  const after = findCgroup2Mount(read());
  const lost = before.options.filter((o) => !after?.options.includes(o));
  if (lost.length) {
    // Never leave the host with fewer cgroup options than it had (nsdelegate is a security boundary).
    await remount(before.options).catch(() => {});
    const still = before.options.filter((o) => !findCgroup2Mount(read())?.options.includes(o));
    if (still.length) throw new Error(`remounting ${before.mountPoint} with favordynmods dropped ${still.join(", ")} and it could not be restored: remount it with them`);
    return { on: false, detail: `left favordynmods off: remounting ${before.mountPoint} dropped ${lost.join(", ")} (restored)` };
  }
  // In a cgroup namespace other than the host's (a container), the kernel ignores the option.
  if (!after?.options.includes("favordynmods")) return { on: false, detail: `the kernel kept favordynmods off (${before.mountPoint}; a daemon in a container cannot set it: set it on the host)` };
  return { on: true, detail: `turned favordynmods on (${before.mountPoint}, config cgroupFavorDynmods): a sandbox joins its cgroup without waiting for an RCU grace period` };
}

async function mountCmd(args: string[]): Promise<void> {
  await execFileAsync("mount", args, { timeout: 10_000 });
}
