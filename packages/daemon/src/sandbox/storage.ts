import { execFile } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * A sandbox's writable storage in root mode: one tmpfs with a size and an inode cap, holding
 * both /home/user and /tmp, so the `disk` limit covers the two together. The daemon mounts it
 * under the sandbox's scratch dir and hands bwrap open directory fds (bwrap itself runs as the
 * sandbox uid and cannot traverse the state dir).
 */
export class SandboxStorage {
  private constructor(readonly root: string, readonly homeFd: number, readonly tmpFd: number) {}

  /** `root` must be traversable by the sandbox uid all the way down: bwrap resolves the fd's path. */
  static async create(root: string, bytes: number, uid: number): Promise<SandboxStorage> {
    await fsp.mkdir(root, { mode: 0o700 });
    const inodes = Math.max(4096, Math.min(4_000_000, Math.floor(bytes / 2048)));
    await run("mount", ["-t", "tmpfs", "-o", `size=${bytes},nr_inodes=${inodes},mode=0700,uid=${uid},gid=${uid},nosuid,nodev`, "sbx-rw", root]);
    try {
      await fsp.mkdir(join(root, "home"), { mode: 0o755 });
      await fsp.mkdir(join(root, "tmp"), { mode: 0o1777 });
      await fsp.chmod(join(root, "tmp"), 0o1777);
      await fsp.chown(join(root, "home"), uid, uid);
      await fsp.chown(join(root, "tmp"), uid, uid);
      return new SandboxStorage(root, openSync(join(root, "home"), "r"), openSync(join(root, "tmp"), "r"));
    } catch (err) {
      await unmount(root);
      throw err;
    }
  }

  /** Releases the fds and detaches the mount (bwrap's mount namespace holds its own reference until it dies). */
  async destroy(): Promise<void> {
    closeSync(this.homeFd);
    closeSync(this.tmpFd);
    await unmount(this.root);
    await fsp.rmdir(this.root).catch(() => {});
  }
}

async function unmount(path: string): Promise<void> {
  await run("umount", ["--lazy", path]).catch(() => {});
}

/** Detaches every storage mount left below `dir` by a daemon that died, and removes their mount points. */
export async function reclaimStorage(dir: string): Promise<number> {
  let mountinfo = "";
  try {
    mountinfo = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return 0;
  }
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const points = mountinfo
    .split("\n")
    .map((line) => line.split(" ")[4]?.replace(/\\040/g, " "))
    .filter((p): p is string => !!p && p.startsWith(prefix));
  for (const p of points.reverse()) await unmount(p);
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) await fsp.rm(join(dir, name), { recursive: true, force: true });
  return points.length;
}
