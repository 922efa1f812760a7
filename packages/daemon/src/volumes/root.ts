import { execFile } from "node:child_process";
import { chmodSync, closeSync, constants, lchownSync, lstatSync, mkdirSync, openSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { SANDBOX_HOME, SANDBOX_HOME_ALIAS } from "@sbx/protocol";
import { SYSTEM_BUNDLES } from "../egress/tls/trust.js";

const run = promisify(execFile);

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
 * Makes the mount points bwrap needs in `root` (a mounted tree nothing else writes to now),
 * owned by host uid `owner`, and returns the path of the system CA bundle to bind over. Refuses
 * a tree where any component on the way is a symbolic link or not a directory.
 */
export function prepareRoot(root: string, owner: number): { systemBundle: string } {
  const systemBundle = systemBundleIn(root);
  for (const dir of DIRS) ensure(root, dir, "dir", owner);
  for (const file of [...FILES, systemBundle]) ensure(root, file, "file", owner);
  return { systemBundle };
}

function ensure(root: string, path: string, leaf: "dir" | "file", owner: number): void {
  const parts = path.slice(1).split("/");
  let at = root;
  for (let i = 0; i < parts.length; i++) {
    at = join(at, parts[i]!);
    const shown = `/${parts.slice(0, i + 1).join("/")}`;
    const last = i === parts.length - 1;
    const want = last ? leaf : "dir";
    let st;
    try {
      st = lstatSync(at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      if (want === "dir") mkdirSync(at, { mode: shown === "/tmp" ? 0o1777 : 0o755 });
      else closeSync(openSync(at, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644));
      lchownSync(at, owner, owner);
      if (shown === "/tmp") chmodSync(at, 0o1777); // past the umask
      continue;
    }
    if (st.isSymbolicLink()) throw new RootProblem(`${shown} is a symbolic link, where sbx mounts ${path}`);
    if (want === "dir" && !st.isDirectory()) throw new RootProblem(`${shown} is not a directory, where sbx mounts ${path}`);
    if (want === "file" && !st.isFile()) throw new RootProblem(`${shown} is not a regular file, where sbx binds ${path}`);
  }
}

/**
 * The options of a snapshot root's overlay: no set-uid programs or device files take effect, and
 * none of overlayfs's features that store redirects or metadata-only copies in xattrs, which a
 * hostile lower layer could forge.
 */
const OVERLAY_OPTS = "nosuid,nodev,redirect_dir=off,metacopy=off,index=off,xino=off";

/** A snapshot root's overlay, mounted at `merged`: `lower` the mounted snapshot, the layers in `layerDir` (on the sandbox's storage). */
export async function mountOverlay(lower: string, layerDir: string, merged: string): Promise<void> {
  const upper = join(layerDir, "upper");
  const work = join(layerDir, "work");
  await fsp.mkdir(layerDir, { mode: 0o700 });
  await fsp.mkdir(upper, { mode: 0o755 });
  await fsp.mkdir(work, { mode: 0o700 });
  await fsp.mkdir(merged, { mode: 0o755 });
  try {
    await run("mount", ["-t", "overlay", "overlay", "-o", `${OVERLAY_OPTS},lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
  } catch (err) {
    await fsp.rmdir(merged).catch(() => {});
    throw new Error(`mounting the root's overlay failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
}

export async function unmountOverlay(merged: string): Promise<void> {
  await run("umount", [merged]).catch(() => run("umount", ["--lazy", merged]).catch(() => {}));
  await fsp.rmdir(merged).catch(() => {});
}
