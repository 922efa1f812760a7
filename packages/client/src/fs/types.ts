/** The shapes `sandbox.fs` takes and gives, with Deno's names and fields. */
import type { ResultOf } from "@sbx/protocol";

/**
 * What `stat`, `lstat` and `FsFile.stat` report: Deno's `FileInfo`. `mode` is the raw `st_mode`
 * (file type and permission bits; `mode & 0o7777` for the permissions alone).
 */
export interface FileInfo {
  /** A regular file. Mutually exclusive with `isDirectory` and `isSymlink`. */
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  isBlockDevice: boolean;
  isCharDevice: boolean;
  isFifo: boolean;
  isSocket: boolean;
  size: number;
  mtime: Date;
  atime: Date;
  /** The last change of the file's status. */
  ctime: Date;
  /** null where the file system does not record it. */
  birthtime: Date | null;
  dev: number;
  ino: number;
  /** The raw `st_mode` bits: file type and permissions. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
  /** Blocks allocated, in 512-byte units. */
  blocks: number;
}

/** An entry of `readDir`. */
export interface DirEntry {
  /** The entry's name, without the directory. */
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

/** An entry of `walk` and `expandGlob`. */
export interface WalkEntry extends DirEntry {
  /** Full path of the entry: relative when the walk's root was. */
  path: string;
}

/** Options of `walk`, as in Deno's `@std/fs/walk`. */
export interface WalkOptions {
  /** How deep to go (1: the root and its entries). Default Infinity. */
  maxDepth?: number;
  /** Default true. */
  includeFiles?: boolean;
  /** Default true; false leaves the root out too. */
  includeDirs?: boolean;
  /** Default true; meaningful only when `followSymlinks` is false. */
  includeSymlinks?: boolean;
  /** Walk into the directories symlinks point to (default false). */
  followSymlinks?: boolean;
  /** With `followSymlinks`, report followed links by their resolved path (default true). */
  canonicalize?: boolean;
  /** Only entries with one of these extensions ("ts" or ".ts"). */
  exts?: string[];
  /** Only entries whose path matches one of these. */
  match?: RegExp[];
  /** Leave out (and do not walk into) entries whose path matches one of these. */
  skip?: RegExp[];
}

/** Options of `expandGlob`, as in Deno's `@std/fs/expand_glob`. */
export interface ExpandGlobOptions {
  /** Where a relative glob starts (default: the home, the sandbox's working directory). */
  root?: string;
  /** Glob patterns (relative to `root`) to leave out. */
  exclude?: string[];
  /** Default true. */
  includeDirs?: boolean;
  /** Default false. */
  followSymlinks?: boolean;
  /** Default true. */
  canonicalize?: boolean;
  /** Extended glob syntax: ?(a|b), *(a|b), +(a|b), @(a|b), !(a|b). Default true. */
  extended?: boolean;
  /** `**` matches any number of directories. Default true. */
  globstar?: boolean;
  /** Default false. */
  caseInsensitive?: boolean;
}

export interface WriteFileOptions {
  /** Permission bits of a new file (and applied after writing). */
  mode?: number;
  /** Add to the end of the file instead of replacing it. */
  append?: boolean;
  /** Create the file if missing (default true). */
  create?: boolean;
  /** Fail if anything exists at the path (then `create` does not matter). */
  createNew?: boolean;
  /** Aborting stops the write (the file keeps its old content) and rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Bytes `readFile` and `readTextFile` hold in memory at most, unless told otherwise. */
export const DEFAULT_MAX_READ_BYTES = 256 * 1024 * 1024;

export interface ReadFileOptions {
  /**
   * Fail (with `ResourceLimitError`) rather than hold more than this many bytes. Default
   * 256 MiB; read bigger files with `readFileStream`.
   */
  maxBytes?: number;
  /** Aborting stops the read and rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface MkdirOptions {
  /** Create missing parents too; an existing directory is then no error. */
  recursive?: boolean;
  mode?: number;
}

export interface RemoveOptions {
  /** Remove a directory with everything in it. */
  recursive?: boolean;
}

/** Options of `open`, as Deno's. */
export interface OpenOptions {
  /** Default true. */
  read?: boolean;
  /** Default false. */
  write?: boolean;
  /** Writes go to the end (implies write). */
  append?: boolean;
  /** Empty an existing file (needs write). */
  truncate?: boolean;
  /** Create the file if missing (needs write or append). */
  create?: boolean;
  /** Fail if anything exists at the path (needs write or append). */
  createNew?: boolean;
  /** Permission bits of a new file (default 0o666, less the umask). */
  mode?: number;
}

/**
 * Bytes `download` writes to the local disk at most, unless told otherwise: 10 GiB. It goes to
 * disk, not memory, so it is far above readFile's 256 MiB, yet a hostile sandbox cannot fill the
 * disk with one sparse file that it claims holds a terabyte.
 */
export const DEFAULT_MAX_DOWNLOAD_BYTES = 10 * 2 ** 30;

export interface DownloadOptions {
  /**
   * Fail (with `ResourceLimitError`) rather than write more than this many bytes: the sum of the
   * sizes of all downloaded files, as the sandbox declares them (a sparse file counts at its full
   * apparent size). Checked before a file's bytes are written; a download refused (or failing for
   * any other reason) removes what it had written. Default 10 GiB.
   */
  maxBytes?: number;
  /**
   * What to do with a symlink in a downloaded tree that leads out of it (absolute, or climbing
   * above the tree): "refuse" the download (default; nothing is left behind) or "skip" the link.
   * Links that stay inside the tree are kept; a single symlink downloaded by name is followed in
   * the sandbox and its content copied. No download ever creates a link leading out of its target.
   */
  symlinks?: "refuse" | "skip";
}

export type FileData = Uint8Array | string | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

/** A path in the sandbox: a string, or a `file:` URL. */
export type PathLike = string | URL;

const date = (ms: number) => new Date(ms);

/** The protocol's FileInfo (times in milliseconds) as Deno's (times as Dates). */
export function toFileInfo(raw: ResultOf<"fs.stat">): FileInfo {
  return { ...raw, mtime: date(raw.mtime), atime: date(raw.atime), ctime: date(raw.ctime), birthtime: raw.birthtime === null ? null : date(raw.birthtime) };
}
