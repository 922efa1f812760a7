import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { IMAGE_LIMITS, SANDBOX_HOME, SANDBOX_HOME_ALIAS, type ParamsOf, type ResultOf } from "@sbx/protocol";
import { JAVA_TRUST_STORE, SANDBOX_BUNDLE, SANDBOX_CA } from "../egress/tls/trust.js";
import { DENO_PATH, DENO_REPL_DRIVER, PYTHON_REPL_DRIVER } from "../runtimes/files.js";
import { DaemonError, invalid } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import type { VolumeStore } from "./store.js";

/**
 * Root images from Debian's packages (`image.build`): mmdebstrap writes a minbase of the asked
 * suite, plus the asked packages, into a fresh volume image mounted at a private mount point;
 * the image is then made ready to be a sandbox's root (the mount points bwrap binds over, the
 * sandbox's user) and kept as a read-only snapshot.
 *
 * What a tenant chooses is checked before anything runs: package names by Debian's name rule
 * (no paths, versions, releases or apt patterns), the suite from an allow-list. The mirror is the
 * operator's (config imageMirror) and apt checks every index against Debian's archive keyring, so
 * every maintainer script mmdebstrap runs as host root in its chroot is one Debian signed. The
 * build runs in a mount and pid namespace of its own: its mounts (/proc, /sys, /dev in the chroot)
 * and any process a maintainer script leaves behind die with it, and with the daemon.
 */

type SnapshotInfo = ResultOf<"image.build">;

export interface ImageBuilderOptions {
  /** The Debian mirror every build fetches from (config imageMirror). */
  mirror: string;
  /** Builds running at once; more are refused (config imageBuilds). */
  concurrent: number;
  log: Logger;
  /** The mmdebstrap binary; found on the daemon's PATH unless given. */
  mmdebstrap?: string;
  /** A build running longer than this is stopped and fails. */
  timeoutMs?: number;
}

export const DEFAULT_MIRROR = "http://deb.debian.org/debian";
const DEFAULT_TIMEOUT_MS = 20 * 60_000;

/** The sandbox's user, added to the image's /etc/passwd and /etc/group when it has none (the sandbox binds its own over them). */
const SANDBOX_USER = { name: "user", uid: 1000, gid: 1000 };

/**
 * What a sandbox's bwrap binds or makes over its root (sandbox/launcher.ts), so each must exist in a
 * read-only root: directories, files (bound files need a file to bind over), and the /var/tmp link.
 */
export const ROOT_MOUNT_POINTS: ReadonlyArray<{ path: string; type: "dir" | "file" | "symlink"; target?: string }> = [
  ...["/proc", "/dev", "/sys", "/tmp", "/home", SANDBOX_HOME, SANDBOX_HOME_ALIAS, "/.sbx", "/.sbx/run", dirname(DENO_PATH), dirname(DENO_REPL_DRIVER)].map((path) => ({ path, type: "dir" as const })),
  ...[
    "/etc/passwd", "/etc/group", "/etc/hosts", "/sys/devices/system/cpu/online",
    "/.sbx/node", "/.sbx/supervisor", "/.sbx/node-proxy.cjs", "/.sbx/node-proxy-impl.cjs",
    DENO_PATH, DENO_REPL_DRIVER, PYTHON_REPL_DRIVER, SANDBOX_BUNDLE, SANDBOX_CA, JAVA_TRUST_STORE,
    // The system bundle's path on Debian: the sandbox's bundle is bound over it.
    "/etc/ssl/certs/ca-certificates.crt",
  ].map((path) => ({ path, type: "file" as const })),
  { path: "/var/tmp", type: "symlink", target: "/tmp" },
];

/** A build failure whose message the caller may read (it names the problem, not the host). */
export class BuildFailure extends Error {
  constructor(readonly code: "InvalidParams" | "ResourceLimit" | "Unavailable", message: string) {
    super(message);
  }
}

export class ImageBuilder {
  private running = 0;

  constructor(private readonly store: VolumeStore, private readonly opts: ImageBuilderOptions) {}

  /** Builds the image and keeps it as `owner`'s snapshot; `progress` gets mmdebstrap's stage lines as they come. */
  async build(owner: string, p: ParamsOf<"image.build">, progress: (line: string) => void): Promise<SnapshotInfo> {
    const mmdebstrap = this.opts.mmdebstrap ?? findOnPath("mmdebstrap");
    if (!mmdebstrap) throw new DaemonError("Unsupported", "image.build needs mmdebstrap on the daemon host, and it has none: install it (apt-get install mmdebstrap)");
    if (this.running >= this.opts.concurrent) {
      throw new DaemonError("ResourceLimit", `the daemon is already building ${this.running} image${this.running === 1 ? "" : "s"}, the most it builds at once (config imageBuilds: ${this.opts.concurrent}); try again when one finishes`);
    }
    const build = { suite: p.suite ?? "bookworm", packages: p.packages ?? [], mirror: this.opts.mirror };
    this.running++;
    const started = performance.now();
    try {
      const info = await this.store.buildSnapshot(owner, p.slug, p.capacity ?? IMAGE_LIMITS.defaultCapacity, build, async (at) => {
        await this.debootstrap(mmdebstrap, at, build, progress);
        await checkInstalled(at, build.packages);
        await prepareRoot(at);
        await trim(at, this.opts.log);
      });
      this.opts.log.info(`image ${info.id} built in ${((performance.now() - started) / 1000).toFixed(1)} s, ${info.flattenedSize} bytes in use`);
      return info;
    } catch (err) {
      if (err instanceof DaemonError) throw err;
      if (err instanceof BuildFailure) throw err.code === "InvalidParams" ? invalid("packages", err.message) : new DaemonError(err.code, `could not build image '${p.slug}': ${err.message}`);
      this.opts.log.warn(`image build '${p.slug}' failed: ${(err as Error).message}`);
      throw new DaemonError("InternalError", `could not build image '${p.slug}' (the daemon's log says why)`);
    } finally {
      this.running--;
    }
  }

  /** Runs mmdebstrap into `at`, in a mount and pid namespace of its own that dies with it (and with the daemon). */
  private debootstrap(mmdebstrap: string, at: string, build: { suite: string; packages: string[]; mirror: string }, progress: (line: string) => void): Promise<void> {
    const args = [
      "--pdeathsig", "SIGKILL", "--",
      "unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
      mmdebstrap, "--mode=root", "--format=directory", "--variant=minbase",
      ...(build.packages.length ? [`--include=${build.packages.join(",")}`] : []),
      build.suite, at, build.mirror,
    ];
    const env: NodeJS.ProcessEnv = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", LC_ALL: "C.UTF-8" };
    // The operator's proxy for reaching the mirror, if the daemon has one.
    for (const k of ["http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"]) if (process.env[k]) env[k] = process.env[k];
    const child = spawn("setpriv", args, { stdio: ["ignore", "pipe", "pipe"], env });
    const tail: string[] = [];
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > 400) tail.shift();
      // Stage lines ("I: downloading packages with apt..."), warnings and errors; not apt's own chatter.
      if (/^[IWE]: /.test(line)) progress(line.split(at).join("<image>").slice(0, 1000));
    };
    createInterface({ input: child.stdout! }).on("line", onLine);
    createInterface({ input: child.stderr! }).on("line", onLine);
    const timeoutMs = this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    return new Promise<void>((resolve, reject) => {
      child.once("error", (err) => reject(new Error(`could not run mmdebstrap: ${err.message}`)));
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        if (code === 0) return resolve();
        const output = tail.join("\n").split(at).join("<image>");
        if (timedOut) return reject(new BuildFailure("Unavailable", `mmdebstrap ran longer than ${timeoutMs / 60_000} minutes and was stopped (is the mirror ${build.mirror} slow?)`));
        reject(classify(output, build) ?? new Error(`mmdebstrap failed (${signal ?? `exit ${code}`}):\n${tail.slice(-20).join("\n")}`));
      });
    });
  }
}

/** What a failed mmdebstrap run says, as a failure the caller can act on; null if it is none of these. */
export function classify(output: string, build: { suite: string; mirror: string }): BuildFailure | null {
  const missing = [...output.matchAll(/^E: Unable to locate package (\S+)$/gm)].map((m) => m[1]!);
  if (missing.length) return new BuildFailure("InvalidParams", `Debian ${build.suite} has no package ${[...new Set(missing)].map((n) => `'${n}'`).join(", ")}`);
  const noCandidate = [...output.matchAll(/^E: Package '([^']+)' has no installation candidate$/gm)].map((m) => m[1]!);
  if (noCandidate.length) return new BuildFailure("InvalidParams", `Debian ${build.suite} has no installable package ${noCandidate.map((n) => `'${n}'`).join(", ")} (it is only referred to by others, or purely virtual)`);
  const unmet = /^E: Unable to correct problems, you have held broken packages\.|^E: Unable to satisfy dependencies/m.test(output);
  if (unmet) return new BuildFailure("InvalidParams", `the packages cannot be installed together on Debian ${build.suite} (unmet dependencies or conflicts):\n${errorLines(output)}`);
  if (/No space left on device/.test(output)) return new BuildFailure("ResourceLimit", "ran out of space: the image's capacity is too small for these packages (ask for a larger capacity), or the daemon host's disk is full");
  const unreachable = /^E: Failed to fetch .*(Could not connect|Could not resolve|Temporary failure resolving|Connection timed out|Connection failed|Unable to connect)/m.test(output) || /^Err:\d+ .*\n\s+(Could not connect|Could not resolve|Temporary failure resolving)/m.test(output);
  if (unreachable) return new BuildFailure("Unavailable", `the Debian mirror ${build.mirror} is unreachable from the daemon host:\n${errorLines(output)}`);
  if (/^E: Failed to fetch .* 404 /m.test(output) || /does not have a Release file|is not signed|NO_PUBKEY|The following signatures were invalid/m.test(output)) {
    return new BuildFailure("Unavailable", `the Debian mirror ${build.mirror} did not serve a signed ${build.suite}:\n${errorLines(output)}`);
  }
  return null;
}

function errorLines(output: string): string {
  return output.split("\n").filter((l) => l.startsWith("E: ") && !l.startsWith("E: mmdebstrap failed") && !l.startsWith("E: setup failed")).slice(0, 6).map((l) => l.slice(0, 300)).join("\n");
}

/**
 * Every asked package is installed (by its name, or a package that provides it): apt resolved each
 * name to what was meant, and the image holds it. Read from dpkg's status file, not by running
 * anything in the image.
 */
async function checkInstalled(root: string, packages: string[]): Promise<void> {
  if (!packages.length) return;
  const status = await fsp.readFile(join(root, "var/lib/dpkg/status"), "utf8");
  const have = new Set<string>();
  for (const para of status.split(/\n\n+/)) {
    if (!/^Status: install ok installed$/m.test(para)) continue;
    const name = /^Package: (\S+)$/m.exec(para)?.[1];
    if (name) have.add(name);
    const provides = /^Provides: (.+)$/m.exec(para)?.[1];
    for (const p of provides?.split(",") ?? []) have.add(p.trim().split(/[\s(:]/)[0]!);
  }
  const absent = packages.filter((p) => !have.has(p));
  if (absent.length) throw new BuildFailure("InvalidParams", `mmdebstrap finished but ${absent.map((n) => `'${n}'`).join(", ")} ${absent.length === 1 ? "is" : "are"} not installed in the image`);
}

/**
 * Makes the built tree ready to be a sandbox's root: every path bwrap binds over exists (owned by
 * root), the sandbox's user has an entry, and what mmdebstrap copied from the host for its
 * chroot (the host's name and resolver) is gone. Paths are walked with lstat: a symlink where a directory
 * should be is refused rather than followed out of the image.
 */
export async function prepareRoot(root: string): Promise<void> {
  for (const { path, type, target } of ROOT_MOUNT_POINTS) await ensure(root, path, type, target);
  await addSandboxUser(root);
  // The build host's name and resolver, copied in for the chroot: not the image's to keep.
  for (const file of ["etc/hostname", "etc/resolv.conf"]) await fsp.rm(join(root, file), { force: true });
}

async function ensure(root: string, path: string, type: "dir" | "file" | "symlink", target?: string): Promise<void> {
  const parts = path.slice(1).split("/");
  let at = root;
  for (const [i, part] of parts.entries()) {
    at = join(at, part);
    const last = i === parts.length - 1;
    const st = await fsp.lstat(at).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return null;
      throw err;
    });
    if (!last) {
      if (!st) await fsp.mkdir(at, { mode: 0o755 });
      else if (!st.isDirectory()) throw new Error(`${parts.slice(0, i + 1).join("/")} in the image is not a directory`);
      continue;
    }
    if (type === "dir") {
      if (!st) await fsp.mkdir(at, { mode: path === "/tmp" ? 0o1777 : 0o755 });
      else if (!st.isDirectory()) throw new Error(`${path} in the image is not a directory`);
      if (path === "/tmp") await fsp.chmod(at, 0o1777);
    } else if (type === "file") {
      if (!st) await fsp.writeFile(at, "", { mode: 0o644, flag: "wx" });
      else if (!st.isFile()) throw new Error(`${path} in the image is not a regular file`);
    } else {
      // /var/tmp: Debian makes an empty directory; the sandbox has a link to /tmp there.
      if (st?.isSymbolicLink() && (await fsp.readlink(at)) === target) return;
      if (st?.isDirectory()) await fsp.rmdir(at);
      else if (st) throw new Error(`${path} in the image is neither a directory nor a link to ${target}`);
      await fsp.symlink(target!, at);
    }
  }
}

/**
 * Adds the sandbox's user (uid and gid 1000, home /home/sandbox) unless the image has that name or
 * id already, with a locked password (no login, as in the sandbox, whose passwd replaces this one).
 */
async function addSandboxUser(root: string): Promise<void> {
  const { name, uid, gid } = SANDBOX_USER;
  /** Appends `line` to /etc/`file` unless a line there has the name (or, with `id`, that id); whether it did. */
  const append = async (file: string, line: string, id?: number): Promise<boolean> => {
    const path = join(root, "etc", file);
    if (!existsSync(path)) return false;
    const text = await fsp.readFile(path, "utf8");
    if (text.split("\n").some((l) => l.split(":")[0] === name || (id !== undefined && l.split(":")[2] === String(id)))) return false;
    await fsp.appendFile(path, `${text.endsWith("\n") || text === "" ? "" : "\n"}${line}\n`);
    return true;
  };
  if (await append("group", `${name}:x:${gid}:`, gid)) await append("gshadow", `${name}:!::`);
  if (await append("passwd", `${name}:x:${uid}:${gid}:sandbox user:${SANDBOX_HOME}:/bin/bash`, uid)) await append("shadow", `${name}:!:19000:0:99999:7:::`);
}

/**
 * Gives the blocks of what the build deleted (apt's downloaded packages and lists) back to the host:
 * the loop device passes the discards on as holes punched in the sparse image. Only space is at
 * stake, so a file system that cannot trim is logged, not a failure.
 */
async function trim(at: string, log: Logger): Promise<void> {
  await new Promise<void>((resolve) => {
    execFile("fstrim", [at], (err) => {
      if (err) log.warn(`fstrim of a built image failed (its image keeps the deleted blocks): ${err.message}`);
      resolve();
    });
  });
}

/** `name` in a directory of the daemon's PATH (the standard ones if it has none). */
export function findOnPath(name: string, path = process.env.PATH): string | null {
  const dirs = path ? path.split(":").filter((d) => d.startsWith("/")) : ["/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"];
  for (const dir of dirs) if (existsSync(join(dir, name))) return join(dir, name);
  return null;
}
