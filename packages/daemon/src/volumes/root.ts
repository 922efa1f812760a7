import { chmodSync, closeSync, constants, lchownSync, lstatSync, mkdirSync, openSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { SANDBOX_HOME, SANDBOX_HOME_ALIAS } from "@sbx/protocol";
import { SYSTEM_BUNDLES } from "../egress/tls/trust.js";
import { UID_BLOCK } from "../sandbox/uid-range.js";
import { runTool } from "../util/host-tools.js";

/**
 * Booting a sandbox from a volume or snapshot (`sandbox.create`'s `root`) instead of the host's
 * /usr. A snapshot is read-only and shared by every sandbox booted from it, so each gets an
 * overlay: the snapshot below, a fresh upper layer on the sandbox's own storage (its `disk` cap
 * covers what it writes anywhere), gone with the sandbox. A volume is mounted read-write as / by
 * one sandbox at a time.
 *
 * Either way the tree is hostile: a sandbox wrote it (a volume) or may have (a snapshot of one).
 * bwrap creates the mount points it lacks as the sandbox's uid and follows links while it does,
 * so before a launch the daemon makes every mount point bwrap needs exist in the tree, checking
 * each path component with lstat and refusing a root where one is a symbolic link or the wrong
 * kind of file. Nothing else has the tree mounted writable meanwhile (a volume has one user, an
 * overlay's upper layer is new), so what was checked is what bwrap finds.
 */

/** Directories bwrap mounts over or into (files under /.sbx and /sys go on tmpfs mounts bwrap makes). */
const DIRS = ["/.sbx", "/proc", "/dev", "/sys", "/etc", SANDBOX_HOME, SANDBOX_HOME_ALIAS, "/tmp"];
/** Files bwrap binds over. */
const FILES = ["/etc/hosts"];

/** Where the system CA bundle is in this root (the first of the usual paths that is a regular file), or the Debian path to make. */
function systemBundleIn(root: string): string {
  for (const path of SYSTEM_BUNDLES) {
    if (!path.startsWith("/etc/ssl/")) continue;
    try {
      if (lstatSync(join(root, path)).isFile()) return path;
    } catch {
      // not in this root
    }
  }
  return "/etc/ssl/certs/ca-certificates.crt";
}

/** A root that cannot be booted: the message names the path and why. */
export class RootProblem extends Error {}

/**
 * Makes the mount points bwrap needs for the tree `view` (a mounted tree nothing else writes to
 * now), owned by `owner` (the home's by `homeOwner`), and returns the path of the system CA bundle
 * to bind over. Refuses a tree where any component on the way is a symbolic link or not a
 * directory. What is missing is made in `target`: the tree itself for a volume, the new upper
 * layer of a snapshot's overlay (before it is mounted), where the directories on the way are
 * made as the snapshot has them, so the overlay merges them.
 */
export function prepareRoot(view: string, target: string, owners: { owner: number; homeOwner: number; shift?: number }): { systemBundle: string } {
  const systemBundle = systemBundleIn(view);
  const ownerOf = (path: string) => (path === SANDBOX_HOME || path === SANDBOX_HOME_ALIAS ? owners.homeOwner : owners.owner);
  const shift = owners.shift ?? 0;
  for (const dir of DIRS) ensure(view, target, dir, "dir", { leaf: ownerOf(dir), dirs: owners.owner, shift });
  for (const file of [...FILES, systemBundle]) ensure(view, target, file, "file", { leaf: owners.owner, dirs: owners.owner, shift });
  return { systemBundle };
}

function ensure(view: string, target: string, path: string, leaf: "dir" | "file", owner: { leaf: number; dirs: number; shift: number }): void {
  const parts = path.slice(1).split("/");
  let missing = false;
  for (let i = 0; i < parts.length; i++) {
    const sub = parts.slice(0, i + 1).join("/");
    const shown = `/${sub}`;
    const want = i === parts.length - 1 ? leaf : "dir";
    let st = null;
    if (!missing) {
      try {
        st = lstatSync(join(view, sub));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        missing = true;
      }
    }
    if (st) {
      if (st.isSymbolicLink()) throw new RootProblem(`${shown} is a symbolic link, where sbx mounts ${path}`);
      if (want === "dir" && !st.isDirectory()) throw new RootProblem(`${shown} is not a directory, where sbx mounts ${path}`);
      if (want === "file" && !st.isFile()) throw new RootProblem(`${shown} is not a regular file, where sbx binds ${path}`);
      // A directory on the way to something missing is made in an upper layer as the snapshot has it.
      if (target !== view && want === "dir" && i < parts.length - 1) make(join(target, sub), "dir", st.mode & 0o7777, shifted(st.uid, owner.shift), shifted(st.gid, owner.shift));
      continue;
    }
    const uid = i === parts.length - 1 ? owner.leaf : owner.dirs;
    make(join(target, sub), want, shown === "/tmp" ? 0o1777 : want === "dir" ? 0o755 : 0o644, uid, uid);
  }
}

/** An owner on disk as the idmapped view shows it (`shift` up, the block's size at most), or the host's overflow id. */
const shifted = (id: number, shift: number) => (shift === 0 ? id : id < UID_BLOCK ? shift + id : 65534);

/** Makes a directory or an empty file unless it is there already (made for another path), then sets its mode past the umask, and owner. */
function make(at: string, kind: "dir" | "file", mode: number, uid: number, gid: number): void {
  try {
    if (kind === "dir") mkdirSync(at, { mode });
    else closeSync(openSync(at, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return;
    throw err;
  }
  chmodSync(at, mode);
  lchownSync(at, uid, gid);
}

/**
 * The layers of a snapshot root's overlay, in `layerDir` (on the sandbox's storage): the top of
 * the writable one is owned by `rootUid` (the sandbox's uid 0), as the snapshot's top is.
 */
export async function makeLayers(layerDir: string, rootUid: number): Promise<{ upper: string; work: string }> {
  const upper = join(layerDir, "upper");
  const work = join(layerDir, "work");
  await fsp.mkdir(layerDir, { mode: 0o700 });
  await fsp.mkdir(upper, { mode: 0o755 });
  await fsp.mkdir(work, { mode: 0o700 });
  await fsp.chown(upper, rootUid, rootUid);
  return { upper, work };
}

/** Unmounts one of a root's mounts (the overlay, or an idmapped view) and removes its mount point. */
export async function unmountRootMount(merged: string): Promise<void> {
  await runTool("umount", [merged]).catch(() => runTool("umount", ["--lazy", merged]).catch(() => {}));
  await fsp.rmdir(merged).catch(() => {});
}

/**
 * Why this kernel cannot boot a sandbox from a `kind` root, or null if it can: a volume root is
 * an idmapped ext4 mount (Linux 5.12), a snapshot root an overlay over one (5.19). Checked before
 * anything is mounted, so an old kernel gets a clear Unsupported instead of a failed boot.
 */
export function rootKernelProblem(kind: "volume" | "snapshot", kernel: string = release()): string | null {
  const need = kind === "volume" ? [5, 12] : [5, 19];
  const m = /^(\d+)\.(\d+)/.exec(kernel);
  if (!m) return null;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major > need[0]! || (major === need[0] && minor >= need[1]!)) return null;
  const what = kind === "volume" ? "an idmapped mount of the volume" : "an overlay over an idmapped mount of the snapshot";
  return `booting from a ${kind} needs ${what}, which Linux ${need.join(".")} and later have; this host runs ${kernel}`;
}
