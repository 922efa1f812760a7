import { constants, type BigIntStats, type Stats } from "node:fs";
import * as fsp from "node:fs/promises";
import { dirname, join, posix, sep } from "node:path";
import { neverShared } from "./etc.js";

/**
 * One copy of the parts of the host's /etc a sandbox sees (etc-view.ts keeps generations of
 * them). The rules keep the copy to what a sandbox uid could read through the per-entry binds it
 * replaces, and never more: the daemon copying as root must not lend its eyes to a sandbox.
 * - A file is copied only if everyone may read it; sockets, fifos and devices never are.
 * - A directory keeps its permission bits (write bits dropped); its entries are copied only if
 *   everyone may enter it and nobody but root (or the daemon's user) can change it.
 * - A link inside a copied directory is copied as the link it is: the sandbox resolves it in its
 *   own tree, as it did through the bind.
 * - A top-level entry (or linked path) that is a link is kept as a link when it leads into /usr
 *   (the sandbox's /usr is the host's); otherwise what it leads to is copied, but only along a
 *   path nobody else can change, to something everyone may read, never into what
 *   {@link neverShared} names.
 */

/** Where a copy came from: the host's /etc, or a directory a test gives. */
export interface EtcSource {
  /** The directory that stands for /etc. */
  root: string;
  /** Top-level names to copy (ETC_SHARED). */
  names: readonly string[];
  /** Paths under /etc that links from /usr lead to (linkedEtcPaths): whole entries or single files in them. */
  linked: readonly string[];
  /** Bounds of one copy (default MAX_COPY_ENTRIES, MAX_COPY_BYTES). */
  max?: { entries: number; bytes: number };
}

/** What a copy read, so that a change to any of it is noticed. */
export interface EtcCopy {
  /** Every source path looked at (missing ones too): their lstat is the copy's stamp. */
  visited: string[];
  /** Their lstat as the copy found it, before reading them: {@link stampOf} the same paths differs once any changed. */
  stamp: string;
  /** Source directories to watch, each with the names in it that matter (null: all of them). */
  watch: Map<string, Set<string> | null>;
  entries: number;
  bytes: number;
}

/** Bounds a copy: a host /etc past them is refused rather than copied into the state dir. */
export const MAX_COPY_ENTRIES = 50_000;
export const MAX_COPY_BYTES = 256 << 20;

/** Owners whose directories a copy may follow a link through or walk: root and the daemon's own user. */
const TRUSTED = new Set([0, process.getuid?.() ?? 0]);

/** Nobody but a trusted owner can change what is in it. */
const unchangeable = (st: Stats) => TRUSTED.has(st.uid) && (st.mode & 0o022) === 0;

/** Copies `source` into the empty directory `into` (made by the caller). */
export async function copyEtc(source: EtcSource, into: string): Promise<EtcCopy> {
  const c = new Copier(source, into);
  for (const name of source.names) await c.entry(name);
  for (const path of source.linked) {
    if (!path.startsWith("/etc/")) continue;
    const rel = posix.normalize(path.slice("/etc/".length));
    if (rel.startsWith("..") || rel.startsWith("/") || rel === ".") continue;
    await c.entry(rel);
  }
  return { visited: c.visited, stamp: c.stamps.join("\n"), watch: c.watch, entries: c.entries, bytes: c.bytes };
}

/** The lstat of every path a copy looked at: equal stamps, equal copies. */
export async function stampOf(paths: readonly string[]): Promise<string> {
  const parts: string[] = [];
  for (const p of paths) parts.push(await stampLine(p));
  return parts.join("\n");
}

async function stampLine(path: string): Promise<string> {
  const st: BigIntStats | null = await fsp.lstat(path, { bigint: true }).catch(() => null);
  return st ? `${st.dev}:${st.ino}:${st.mode}:${st.uid}:${st.size}:${st.mtimeNs}:${st.ctimeNs}` : "-";
}

class Copier {
  readonly visited: string[] = [];
  readonly stamps: string[] = [];
  readonly watch = new Map<string, Set<string> | null>();
  entries = 0;
  bytes = 0;

  constructor(
    private readonly source: EtcSource,
    private readonly into: string,
  ) {}

  /** Notes `path` as read, with its lstat now. */
  private async visit(path: string): Promise<void> {
    this.visited.push(path);
    this.stamps.push(await stampLine(path));
  }

  /** Watches `name` in directory `dir` (null: everything in it). */
  watchName(dir: string, name: string | null): void {
    const names = this.watch.get(dir);
    if (name === null) this.watch.set(dir, null);
    else if (names === undefined) this.watch.set(dir, new Set([name]));
    else names?.add(name);
  }

  /** A top-level name, or a path below one, copied to the same place in the view. */
  async entry(rel: string): Promise<void> {
    const parts = rel.split("/");
    // The directories above a single linked file: made plain (0755), watched for that file's name.
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      this.watchName(join(this.source.root, dir), parts[i]!);
      await fsp.mkdir(join(this.into, dir), { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "EEXIST") throw err;
      });
    }
    this.watchName(this.source.root, parts[0]!);
    await this.place(join(this.source.root, rel), rel, true);
  }

  private count(): void {
    const max = this.source.max?.entries ?? MAX_COPY_ENTRIES;
    if (++this.entries > max) throw new Error(`the host's /etc entries a sandbox sees hold more than ${max} files`);
  }

  private addBytes(n: number): void {
    const max = this.source.max?.bytes ?? MAX_COPY_BYTES;
    this.bytes += n;
    if (this.bytes > max) throw new Error(`the host's /etc entries a sandbox sees hold more than ${max} bytes`);
  }

  private async place(from: string, rel: string, top: boolean): Promise<void> {
    if (neverShared(rel) && top) return;
    await this.visit(from);
    const st = await fsp.lstat(from).catch(() => null);
    if (!st) return;
    if (await exists(join(this.into, rel))) return; // a linked path inside an entry copied whole
    this.count();
    // Inside a shared entry (ssl/private): a directory's name as the binds showed it, never what is in it.
    if (neverShared(rel)) return st.isDirectory() ? this.dir(from, rel, st, false) : undefined;
    if (st.isSymbolicLink()) return top ? this.topLink(from, rel) : this.link(from, rel);
    if (st.isDirectory()) return this.dir(from, rel, st);
    if (st.isFile()) return this.file(from, rel);
  }

  private async link(from: string, rel: string): Promise<void> {
    await fsp.symlink(await fsp.readlink(from), join(this.into, rel));
  }

  private async topLink(from: string, rel: string): Promise<void> {
    const target = await fsp.readlink(from);
    // Where the sandbox resolves it: its /usr is the host's, so a link there means the same inside.
    if (posix.resolve("/etc", posix.dirname(rel), target).startsWith("/usr/")) return this.link(from, rel);
    const real = await this.follow(from);
    if (real === null) return;
    const st = await fsp.lstat(real);
    this.watchName(dirname(real), real.split(sep).pop()!);
    await this.visit(real);
    if (st.isDirectory()) return this.dir(real, rel, st);
    if (st.isFile()) return this.file(real, rel);
  }

  /** What the link `from` leads to, if it is safe to copy from: null if not. */
  private async follow(from: string): Promise<string | null> {
    const real = await fsp.realpath(from).catch(() => null);
    if (real === null || real === "/") return null;
    const root = `${this.source.root}/`;
    if (real.startsWith(root) && neverShared(real.slice(root.length))) return null;
    if (real.startsWith("/etc/") && neverShared(real.slice("/etc/".length))) return null;
    // Every directory on the way: unchangeable by anyone else, and open to everyone.
    const parts = real.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/") || "/";
      const st = await fsp.stat(dir).catch(() => null);
      if (!st || !unchangeable(st) || (st.mode & 0o001) === 0) return null;
      await this.visit(dir);
    }
    const st = await fsp.stat(real);
    return (st.mode & 0o004) !== 0 && (st.isFile() || st.isDirectory()) ? real : null;
  }

  private async dir(from: string, rel: string, st: Stats, walk = true): Promise<void> {
    const to = join(this.into, rel);
    await fsp.mkdir(to, { mode: 0o700 });
    this.watchName(from, null);
    // A directory others may not enter, or that someone else could change while it is read: its name only.
    if (walk && (st.mode & 0o001) !== 0 && unchangeable(st)) {
      for (const name of (await fsp.readdir(from)).sort()) await this.place(join(from, name), join(rel, name), false);
    }
    // Always writable by its owner (the daemon), so that an old generation can be removed.
    await fsp.chmod(to, (st.mode & 0o755) | 0o700);
  }

  private async file(from: string, rel: string): Promise<void> {
    // O_NOFOLLOW and fstat: what is copied is what was checked, even if the name changes meanwhile.
    const fh = await fsp.open(from, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => null);
    if (!fh) return;
    try {
      const st = await fh.stat();
      if (!st.isFile() || (st.mode & 0o004) === 0) return;
      this.addBytes(st.size);
      const data = await fh.readFile();
      await fsp.writeFile(join(this.into, rel), data, { flag: "wx", mode: 0o600 });
      await fsp.chmod(join(this.into, rel), st.mode & 0o755);
    } finally {
      await fh.close();
    }
  }
}

async function exists(path: string): Promise<boolean> {
  return (await fsp.lstat(path).catch(() => null)) !== null;
}
