/**
 * `walk` with the semantics of Deno's `@std/fs/walk` (which Deno's sandboxes run): the root
 * first when it is a directory to include, paths relative when the root is, `exts`, `match` and
 * `skip` tested on the whole path, symlinks reported or (with `followSymlinks`) walked into.
 */
import { posix } from "node:path";
import type { DirEntry, FileInfo, WalkEntry, WalkOptions } from "./types.js";

/** What walking needs of a file system. */
export interface Walkable {
  readDir(path: string): AsyncIterable<DirEntry>;
  stat(path: string): Promise<FileInfo>;
  lstat(path: string): Promise<FileInfo>;
  realPath(path: string): Promise<string>;
}

function included(path: string, exts: string[] | undefined, match: RegExp[] | undefined, skip: RegExp[] | undefined): boolean {
  if (exts && !exts.some((ext) => path.endsWith(ext))) return false;
  if (match && !match.some((pattern) => path.match(pattern))) return false;
  if (skip?.some((pattern) => path.match(pattern))) return false;
  return true;
}

/** The entry for a path, from stat (followed): what std's walk reports for a root or a directory. */
export async function entryOf(fs: Walkable, path: string): Promise<WalkEntry> {
  const normal = posix.normalize(path);
  const info = await fs.stat(normal);
  return { path: normal, name: posix.basename(normal), isFile: info.isFile, isDirectory: info.isDirectory, isSymlink: info.isSymlink };
}

export async function* walk(fs: Walkable, root: string, options: WalkOptions = {}): AsyncIterableIterator<WalkEntry> {
  const { maxDepth = Infinity, includeFiles = true, includeDirs = true, includeSymlinks = true, followSymlinks = false, canonicalize = true, match, skip } = options;
  if (maxDepth < 0) return;
  const exts = options.exts?.map((ext) => (ext.startsWith(".") ? ext : `.${ext}`));
  if (includeDirs && included(root, exts, match, skip)) yield await entryOf(fs, root);
  if (maxDepth < 1 || !included(root, undefined, undefined, skip)) return;
  for await (const entry of fs.readDir(root)) {
    let path = posix.join(root, entry.name);
    let { isSymlink, isDirectory } = entry;
    if (isSymlink) {
      if (!followSymlinks) {
        if (includeSymlinks && included(path, exts, match, skip)) yield { path, ...entry };
        continue;
      }
      const real = await fs.realPath(path);
      if (canonicalize) path = real;
      ({ isSymlink, isDirectory } = await fs.lstat(real));
    }
    if (isSymlink || isDirectory) {
      yield* walk(fs, path, { maxDepth: maxDepth - 1, includeFiles, includeDirs, includeSymlinks, followSymlinks, canonicalize, ...(exts ? { exts } : {}), ...(match ? { match } : {}), ...(skip ? { skip } : {}) });
    } else if (includeFiles && included(path, exts, match, skip)) {
      yield { path, ...entry };
    }
  }
}
