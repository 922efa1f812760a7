import * as fsp from "node:fs/promises";
import { formatExt4, loopDirectIoSoon } from "../sandbox/storage.js";
import { runTool } from "../util/host-tools.js";

/**
 * A volume or snapshot is one ext4 file system in a sparse image file (the same kind of file
 * system as a sandbox's storage, made by the same `formatExt4`, but with a journal: a volume
 * outlives crashes). Only the kernel's ext4 ever writes into an image: a sandbox gets the mounted
 * directory, never the file or its loop device.
 */

/** Mount options of every volume: no set-uid programs or device files take effect from it. */
const RW = "loop,nosuid,nodev,noatime,errors=remount-ro";
/** A snapshot: read-only, and `noload` so not even a journal replay writes to it. */
const RO = "loop,ro,noload,nosuid,nodev,noatime";

/** Makes an empty file system of `bytes` in `image` (a new file), its root owned by root until a sandbox mounts it. */
export async function makeImage(image: string, bytes: number): Promise<void> {
  await fsp.writeFile(image, "", { mode: 0o600, flag: "wx" });
  try {
    await fsp.truncate(image, bytes);
    await formatExt4(image, { journal: true, rootOwner: 0 });
  } catch (err) {
    await fsp.rm(image, { force: true });
    throw err;
  }
}

/** Copies an image as a sparse file (sharing blocks where the host file system can reflink). */
export async function copyImage(from: string, to: string): Promise<void> {
  try {
    await runTool("cp", ["--reflink=auto", "--sparse=always", "--no-preserve=all", from, to]);
    await fsp.chmod(to, 0o600);
  } catch (err) {
    await fsp.rm(to, { force: true });
    if (stderrOf(err).includes("No space left on device")) throw new HostDiskFull();
    throw new Error(`copying the image failed: ${stderrOf(err).split(": ").pop()}`);
  }
}

export async function mountImage(image: string, at: string, readOnly: boolean): Promise<void> {
  await fsp.mkdir(at, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST") throw err;
  });
  try {
    await runTool("mount", ["-o", readOnly ? RO : RW, image, at]);
    // A volume's syncs then write its data once (see loopDirectIo), a second after the mount, off
    // the create's path. A snapshot is only read: its image keeps the host's page cache, which
    // the next mount of it (after its minute unused) reads from.
    if (!readOnly) loopDirectIoSoon(at);
  } catch (err) {
    await fsp.rmdir(at).catch(() => {});
    throw new Error(`mount failed: ${stderrOf(err)}`);
  }
}

/** Unmounts (not lazily: the daemon holds nothing open in it by then) and removes the mount point. */
export async function unmountImage(at: string): Promise<void> {
  await runTool("umount", [at]).catch(async () => {
    // Still busy in the daemon's own namespace: detach it; `attached` keeps the image unused until it is really gone.
    await runTool("umount", ["--lazy", at]).catch(() => {});
  });
  await fsp.rmdir(at).catch(() => {});
}

/**
 * Whether a loop device still backs `image`: its file system is alive somewhere (a sandbox's
 * mount namespace not yet gone). Mounting it again then would be two file systems on one image.
 */
export async function attached(image: string): Promise<boolean> {
  const { stdout } = await runTool("losetup", ["-j", image]);
  return stdout.trim() !== "";
}

/** Bytes in use in the file system: mounted from statfs, else from its superblock (the same figure). */
export async function usedBytes(image: string, mountPoint: string | null): Promise<number> {
  if (mountPoint) {
    const st = await fsp.statfs(mountPoint);
    return (st.blocks - st.bfree) * st.bsize;
  }
  const { stdout } = await runTool("dumpe2fs", ["-h", image], { maxBuffer: 1 << 20 });
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(stdout)?.[1] ?? 0);
  return (field("Block count") - field("Overhead clusters") - field("Free blocks")) * field("Block size");
}

/** Freezes (or thaws) a mounted file system: writes wait, and what was written is on its image. */
export async function freeze(mountPoint: string, on: boolean): Promise<void> {
  try {
    await runTool("fsfreeze", [on ? "--freeze" : "--unfreeze", mountPoint]);
  } catch (err) {
    throw new Error(`fsfreeze ${on ? "--freeze" : "--unfreeze"} failed: ${stderrOf(err)}`);
  }
}

/** Bytes the image file occupies on the host disk (it is sparse). */
export async function allocatedBytes(image: string): Promise<number> {
  const st = await fsp.stat(image);
  return st.blocks * 512;
}

/**
 * Grows or shrinks the unmounted file system in `image` to `bytes`. Shrinking below what the
 * data needs fails in resize2fs before anything changes; growing extends the file first and
 * takes it back if resize2fs fails.
 */
export async function resizeImage(image: string, bytes: number): Promise<void> {
  const current = (await fsp.stat(image)).size;
  await check(image);
  if (bytes > current) {
    await fsp.truncate(image, bytes);
    try {
      await runTool("resize2fs", [image]);
    } catch (err) {
      await fsp.truncate(image, current);
      throw new Error(`resize2fs failed: ${stderrOf(err)}`);
    }
    return;
  }
  try {
    await runTool("resize2fs", [image, `${Math.floor(bytes / 1024)}K`]);
  } catch (err) {
    throw new ShrinkError(stderrOf(err));
  }
  await fsp.truncate(image, bytes);
}

/** The disk holding the state dir filled up (the partial copy is removed). */
export class HostDiskFull extends Error {
  constructor() {
    super("the daemon host's disk holding volumes is full (No space left on device); nothing was kept");
  }
}

/** resize2fs refused to shrink: the data needs more room than asked for. */
export class ShrinkError extends Error {}

/** e2fsck in preen mode, as resize2fs requires; exit codes 0 and 1 mean clean or fixed. */
async function check(image: string): Promise<void> {
  try {
    await runTool("e2fsck", ["-f", "-p", image]);
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code !== 1) throw new Error(`e2fsck found problems it could not fix (exit ${code}): ${stderrOf(err)}`);
  }
}

/**
 * Hands the volume's files to the host uid of the sandbox about to mount it (each sandbox has its
 * own uid, seen as uid 1000 inside), or with `from`, only those owned by `from` (owner and group
 * separately): a volume booted as a root gets back the canonical owner of what a sandbox's uid
 * was handed. Runs on a mount point only the daemon can reach, with no sandbox holding the file
 * system, so nothing changes under the walk. `chown -R -P -h` changes symlinks themselves and
 * never follows one, and walks with openat, so a tree deeper than PATH_MAX (which a sandbox can
 * build) is handled too.
 */
export async function chownTree(root: string, uid: number, from?: number): Promise<void> {
  const passes = from === undefined ? [[`${uid}:${uid}`]] : [[`--from=${from}`, `${uid}`], [`--from=:${from}`, `:${uid}`]];
  try {
    for (const args of passes) await runTool("chown", ["-R", "-P", "-h", ...args, "--", root], { maxBuffer: 1 << 20 });
  } catch (err) {
    throw new Error(`chown failed: ${stderrOf(err)}`);
  }
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  // e2fsprogs start with a banner ("resize2fs 1.47.0 (5-Feb-2023)"): not part of what went wrong.
  const lines = (e.stderr?.trim() || e.message || String(err)).split("\n").filter((l) => l.trim() && !/^\S+ \d+\.\d+(\.\d+)? \(/.test(l));
  return lines.slice(-3).join("; ");
}
