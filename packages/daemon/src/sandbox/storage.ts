import { closeSync, openSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { mountPoints, mountSource } from "../util/mountinfo.js";
import { runTool } from "../util/host-tools.js";

/**
 * A sandbox's writable storage in root mode: one ext4 file system in a sparse image file,
 * loop-mounted, holding both the home (/home/sandbox) and /tmp, so the `disk` limit (bytes, and inodes) covers
 * the two together. Being disk-backed, what a sandbox writes is page cache the kernel can write
 * back and reclaim: filling the disk ends in ENOSPC, never in an out-of-memory kill. The daemon
 * hands bwrap open directory fds (bwrap runs as the sandbox uid and must still resolve the
 * path, so `root` sits in a directory any uid can traverse).
 *
 * Made in two steps: {@link PreparedStorage.prepare} formats and mounts an image owned by root
 * (the slow part, which {@link StorageStock} does ahead of demand), and `claim` hands it to one
 * sandbox uid.
 */
export class SandboxStorage {
  constructor(readonly root: string, readonly image: string, readonly bytes: number, readonly homeFd: number, readonly tmpFd: number) {}

  /**
   * Makes, mounts and claims a file system in one go (what the create path does when no prepared
   * one fits). Its loop device turns to direct I/O a second after, not before: that `losetup` is
   * one more process, and a burst of creates that found the stock empty is short of CPU already
   * (20 at once: 1.8-1.9x 20 bare bwrap launches, 1.9-2.1x with the switch before each answer).
   */
  static async create(root: string, bytes: number, uid: number, reserve = false): Promise<SandboxStorage> {
    return (await PreparedStorage.prepare(root, bytes, reserve, false)).claim(uid);
  }

  /** Releases the fds, unmounts (bwrap's namespace holds its own reference until it dies) and deletes the image. */
  async destroy(): Promise<void> {
    closeSync(this.homeFd);
    closeSync(this.tmpFd);
    await detach(this.root, this.image);
  }
}

/** A formatted, mounted file system with home and tmp made, owned by root and by no sandbox yet. */
export class PreparedStorage {
  private constructor(readonly root: string, readonly image: string, readonly bytes: number) {}

  /**
   * Makes and mounts the file system; `reserve` allocates the whole image up front (no write can
   * then find the host disk full); `awaitDirectIo` false: its loop device turns to direct I/O
   * a little later (loopDirectIoSoon).
   */
  static async prepare(root: string, bytes: number, reserve = false, awaitDirectIo = true): Promise<PreparedStorage> {
    const image = `${root}.img`;
    const inodes = Math.max(1024, Math.min(4_000_000, Math.floor(bytes / 8192)));
    await fsp.writeFile(image, "", { mode: 0o600 });
    try {
      if (reserve) await runTool("fallocate", ["-l", String(bytes), image]);
      else await fsp.truncate(image, bytes);
      // No journal: a sandbox's storage does not outlive a crash of its sandbox. Root-owned: handed to its uid when used.
      await formatExt4(image, { inodes, journal: false, rootOwner: 0 });
      await fsp.mkdir(root, { mode: 0o700 });
      // errors=remount-ro: metadata that cannot be written turns the file system read-only rather than corrupt.
      await runTool("mount", ["-o", "loop,nosuid,nodev,noatime,errors=remount-ro", image, root]);
      if (awaitDirectIo) await loopDirectIo(root);
      else loopDirectIoSoon(root);
    } catch (err) {
      await fsp.rm(image, { force: true });
      await fsp.rmdir(root).catch(() => {});
      throw err;
    }
    try {
      await fsp.rm(join(root, "lost+found"), { recursive: true, force: true });
      await fsp.chmod(root, 0o700);
      await fsp.mkdir(join(root, "home"), { mode: 0o755 });
      await fsp.mkdir(join(root, "tmp"), { mode: 0o1777 });
      await fsp.chmod(join(root, "tmp"), 0o1777);
      return new PreparedStorage(root, image, bytes);
    } catch (err) {
      await detach(root, image);
      throw err;
    }
  }

  /** Gives the file system to host uid `uid` (its root, home and tmp) and opens the directories bwrap binds. */
  async claim(uid: number): Promise<SandboxStorage> {
    let homeFd = -1;
    try {
      for (const dir of [this.root, join(this.root, "home"), join(this.root, "tmp")]) await fsp.chown(dir, uid, uid);
      homeFd = openSync(join(this.root, "home"), "r");
      return new SandboxStorage(this.root, this.image, this.bytes, homeFd, openSync(join(this.root, "tmp"), "r"));
    } catch (err) {
      if (homeFd >= 0) closeSync(homeFd);
      await this.destroy();
      throw err;
    }
  }

  /** Unmounts and deletes it, unclaimed. */
  destroy(): Promise<void> {
    return detach(this.root, this.image);
  }
}

/**
 * Makes an ext4 file system filling `image` (a file of the size wanted). Lazy init: a 10 GiB file
 * system is ready in a few milliseconds; nodiscard: on a file, mkfs would punch reserved blocks
 * back out; no blocks reserved for root.
 */
export async function formatExt4(image: string, opts: { inodes?: number; journal: boolean; rootOwner: number }): Promise<void> {
  const args = ["-q", "-F", "-m", "0"];
  if (opts.inodes !== undefined) args.push("-N", String(opts.inodes));
  if (!opts.journal) args.push("-O", "^has_journal");
  args.push("-E", `lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=${opts.rootOwner}:${opts.rootOwner}`, image);
  await runTool("mkfs.ext4", args);
}

/** How long after a create made its own storage (or mounted a volume) its loop device turns to direct I/O. */
const DIRECT_IO_LATER_MS = 1000;

/** loopDirectIo, DIRECT_IO_LATER_MS from now: off a create's path (a device in use can switch). */
export function loopDirectIoSoon(mountPoint: string): void {
  setTimeout(() => void loopDirectIo(mountPoint), DIRECT_IO_LATER_MS).unref();
}

/**
 * Switches the loop device under the file system mounted at `mountPoint` to direct I/O: the
 * image file is then read and written without the host's page cache (the file system inside has
 * its own, charged to the sandbox), so nothing is cached twice, and a sync inside writes the
 * sandbox's data once instead of flushing a second, host-side copy. `dd` of 1 GiB with
 * fdatasync into such a file system: 191-208 MB/s buffered, 1.3-1.8 GB/s direct. Best effort: an
 * image on a file system without direct I/O (a ramfs; a tmpfs before Linux 6.6) keeps the
 * buffered device. Returns whether the device now does direct I/O.
 */
export async function loopDirectIo(mountPoint: string): Promise<boolean> {
  try {
    const device = mountSource(mountPoint);
    if (!device?.startsWith("/dev/loop")) return false;
    await runTool("losetup", ["--direct-io=on", device]);
    return true;
  } catch {
    return false;
  }
}

async function detach(root: string, image: string): Promise<void> {
  // A loop device set up by `mount -o loop` frees itself when the file system is released.
  await runTool("umount", ["--lazy", root]).catch(() => {});
  await fsp.rmdir(root).catch(() => {});
  await fsp.rm(image, { force: true });
}

/** Detaches every storage mount left below `dir` by a daemon that died, and removes mount points and images. */
export async function reclaimStorage(dir: string): Promise<number> {
  let all: string[];
  try {
    all = mountPoints();
  } catch {
    return 0;
  }
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const points = all.filter((p) => p.startsWith(prefix));
  for (const p of points.reverse()) await runTool("umount", ["--lazy", p]).catch(() => {});
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) await fsp.rm(join(dir, name), { recursive: true, force: true });
  return points.length;
}
