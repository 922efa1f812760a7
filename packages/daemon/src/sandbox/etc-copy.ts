import { chmodSync, closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync, type BigIntStats, type Stats } from "node:fs";
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

/**
 * A source path a copy looked at. A directory it only passed through on the way a link leads
 * (`through`) counts by identity and permissions: who may change it, not what else changes in it
 * (/tmp, /run and the like change all the time, and the entry on the way is looked at itself).
 */
export interface Visited {
  path: string;
  through?: boolean;
}

/** What a copy read, so that a change to any of it is noticed. */
export interface EtcCopy {
  /** Every source path looked at (missing ones too): their lstat is the copy's stamp. */
  visited: Visited[];
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

/**
 * Copies `source` into the empty directory `into` (made by the caller). The copy is made with
 * blocking calls: a host /etc's few hundred entries take milliseconds that way, where a thread
 * pool round trip per call took hundreds (the daemon's start waits for it; a rebuild is rare).
 */
export async function copyEtc(source: EtcSource, into: string): Promise<EtcCopy> {
  const c = new Copier(source, into);
  for (const name of source.names) c.entry(name);
  for (const path of source.linked) {
    if (!path.startsWith("/etc/")) continue;
    const rel = posix.normalize(path.slice("/etc/".length));
    if (rel.startsWith("..") || rel.startsWith("/") || rel === ".") continue;
    c.entry(rel);
  }
  return { visited: c.visited, stamp: c.stamps.join("\n"), watch: c.watch, entries: c.entries, bytes: c.bytes };
}

/** The lstat of every path a copy looked at (blocking: a few milliseconds): equal stamps, equal copies. */
export function stampOf(visited: readonly Visited[]): string {
  return visited.map(stampLine).join("\n");
}

function stampLine({ path, through }: Visited): string {
  const st: BigIntStats | undefined = lstatSync(path, { bigint: true, throwIfNoEntry: false });
  if (!st) return "-";
  const identity = `${st.dev}:${st.ino}:${st.mode}:${st.uid}`;
  return through ? identity : `${identity}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** Makes `path` unless it is there already (a linked path's directory, or a path inside an entry copied whole). */
function made(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
}

class Copier {
  readonly visited: Visited[] = [];
  readonly stamps: string[] = [];
  readonly watch = new Map<string, Set<string> | null>();
  entries = 0;
  bytes = 0;

  constructor(
    private readonly source: EtcSource,
    private readonly into: string,
  ) {}

  /** Notes `path` as read (or only passed `through`), with its lstat now, before it is read; returns that lstat. */
  private visit(path: string, through = false): Stats | undefined {
    const seen: Visited = through ? { path, through } : { path };
    this.visited.push(seen);
    this.stamps.push(stampLine(seen));
    return lstatSync(path, { throwIfNoEntry: false });
  }

  /** Watches `name` in directory `dir` (null: everything in it). */
  private watchName(dir: string, name: string | null): void {
    const names = this.watch.get(dir);
    if (name === null) this.watch.set(dir, null);
    else if (names === undefined) this.watch.set(dir, new Set([name]));
    else names?.add(name);
  }

  /** A top-level name, or a path below one, copied to the same place in the view. */
  entry(rel: string): void {
    const parts = rel.split("/");
    // The directories above a single linked file: made plain (0755), watched for that file's name.
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      this.watchName(join(this.source.root, dir), parts[i]!);
      made(() => mkdirSync(join(this.into, dir), { mode: 0o755 }));
    }
    this.watchName(this.source.root, parts[0]!);
    this.place(join(this.source.root, rel), rel, true);
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

  private place(from: string, rel: string, top: boolean): void {
    if (neverShared(rel) && top) return;
    const st = this.visit(from);
    if (!st) return;
    this.count();
    // Inside a shared entry (ssl/private): a directory's name as the binds showed it, never what is in it.
    if (neverShared(rel)) return st.isDirectory() ? this.dir(from, rel, st, false) : undefined;
    if (st.isSymbolicLink()) return top ? this.topLink(from, rel) : this.link(from, rel);
    if (st.isDirectory()) return this.dir(from, rel, st);
    if (st.isFile()) return this.file(from, rel);
  }

  private link(from: string, rel: string): void {
    made(() => symlinkSync(readlinkSync(from), join(this.into, rel)));
  }

  private topLink(from: string, rel: string): void {
    const target = readlinkSync(from);
    // Where the sandbox resolves it: its /usr is the host's, so a link there means the same inside.
    if (posix.resolve("/etc", posix.dirname(rel), target).startsWith("/usr/")) return this.link(from, rel);
    const real = this.follow(from);
    if (real === null) return;
    this.watchName(dirname(real), real.split(sep).pop()!);
    const st = this.visit(real);
    if (st?.isDirectory()) return this.dir(real, rel, st);
    if (st?.isFile()) return this.file(real, rel);
  }

  /** What the link `from` leads to, if it is safe to copy from: null if not. */
  private follow(from: string): string | null {
    let real: string;
    try {
      real = realpathSync(from);
    } catch {
      return null;
    }
    if (real === "/") return null;
    const root = `${this.source.root}/`;
    if (real.startsWith(root) && neverShared(real.slice(root.length))) return null;
    if (real.startsWith("/etc/") && neverShared(real.slice("/etc/".length))) return null;
    // Every directory on the way: unchangeable by anyone else, and open to everyone.
    const parts = real.split("/");
    for (let i = 1; i < parts.length; i++) {
      const st = this.visit(parts.slice(0, i).join("/") || "/", true);
      if (!st?.isDirectory() || !unchangeable(st) || (st.mode & 0o001) === 0) return null;
    }
    const st = statSync(real, { throwIfNoEntry: false });
    return st && (st.mode & 0o004) !== 0 && (st.isFile() || st.isDirectory()) ? real : null;
  }

  private dir(from: string, rel: string, st: Stats, walk = true): void {
    const to = join(this.into, rel);
    if (!made(() => mkdirSync(to, { mode: 0o700 }))) return;
    this.watchName(from, null);
    // A directory others may not enter, or that someone else could change while it is read: its name only.
    if (walk && (st.mode & 0o001) !== 0 && unchangeable(st)) {
      for (const name of readdirSync(from).sort()) this.place(join(from, name), join(rel, name), false);
    }
    // Always writable by its owner (the daemon), so that an old generation can be removed.
    chmodSync(to, (st.mode & 0o755) | 0o700);
  }

  private file(from: string, rel: string): void {
    // O_NOFOLLOW and fstat: what is copied is what was checked, even if the name changes meanwhile.
    let fd: number;
    try {
      fd = openSync(from, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      return;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || (st.mode & 0o004) === 0) return;
      this.addBytes(st.size);
      const to = join(this.into, rel);
      if (!made(() => writeFileSync(to, readFileSync(fd), { flag: "wx", mode: 0o600 }))) return;
      chmodSync(to, st.mode & 0o755);
    } finally {
      closeSync(fd);
    }
  }
}
