import { constants } from "node:fs";
import * as fsp from "node:fs/promises";
import { join, posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tar from "tar-stream";
import { entryParts, TarEntryError } from "./names.js";

export interface UnpackOptions {
  /** Stop with an error after this many entries (default 1,000,000). */
  maxEntries?: number;
  /**
   * Symlinks whose target is absolute or climbs out of `dest`: "keep" them (an upload into a
   * sandbox, where every link resolves inside it anyway), "refuse" the archive (the default for
   * a download onto your machine) or "skip" them.
   */
  outsideLinks?: "keep" | "refuse" | "skip";
  /**
   * Where the tree lived on the side it was packed (the sandbox), under each name it has there:
   * an absolute link into it is rewritten as the relative link it means here instead of being
   * treated as outside.
   */
  packedRoot?: string | readonly string[];
  /**
   * Stop before writing a file whose size, as its tar header declares it, would take the sum of
   * all files' declared sizes past this many bytes (default: no limit). Checked before any of
   * the file's bytes are written, so a huge (or sparse) file costs nothing to refuse.
   */
  maxBytes?: number;
  /** The error to stop with when `maxBytes` is passed (default a TarEntryError). */
  tooBig?: (name: string, size: number, sofar: number) => Error;
}

export interface UnpackResult {
  entries: number;
  bytes: number;
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === "ENOENT";

async function lstatOrNull(path: string) {
  try {
    return await fsp.lstat(path);
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}

/**
 * Unpacks a tar stream into `dest` without ever writing outside it: absolute names, `..`,
 * writes through symlinks, hardlinks leaving the tree, device nodes and FIFOs are refused;
 * symlinks are recreated as symlinks, never followed; only permission bits (no setuid,
 * setgid or ownership) are applied. On error, what this call created is removed again.
 */
export async function unpackTar(source: Readable, dest: string, options: UnpackOptions = {}): Promise<UnpackResult> {
  const maxEntries = options.maxEntries ?? 1_000_000;
  const created: string[] = [];
  const dirTimes: Array<[string, Date]> = [];
  let entries = 0;
  let bytes = 0;
  let declared = 0;
  const maxBytes = options.maxBytes ?? Infinity;

  // Every directory we write into must be a real directory reached without symlinks.
  async function parentOf(name: string, parts: string[]): Promise<string> {
    let dir = dest;
    for (const part of parts.slice(0, -1)) {
      dir = join(dir, part);
      const st = await lstatOrNull(dir);
      if (!st) {
        await fsp.mkdir(dir, { mode: 0o755 });
        created.push(dir);
      } else if (st.isSymbolicLink()) throw new TarEntryError(name, `'${part}' is a symlink; refusing to write through it`);
      else if (!st.isDirectory()) throw new TarEntryError(name, `'${part}' is not a directory`);
    }
    return dir;
  }

  async function clearForReplace(name: string, path: string) {
    const st = await lstatOrNull(path);
    if (!st) return;
    if (st.isDirectory()) throw new TarEntryError(name, "a directory already stands there");
    await fsp.unlink(path);
  }

  // The first directory this call had to create for `dest` itself, if any: rolled back too.
  const madeDest = await fsp.mkdir(dest, { recursive: true });
  const rootStat = await fsp.lstat(dest);
  if (!rootStat.isDirectory()) throw Object.assign(new Error(`'${dest}' is not a directory`), { code: "ENOTDIR" });

  const extract = tar.extract();
  source.on("error", (err) => extract.destroy(err));
  source.pipe(extract);
  try {
    for await (const entry of extract) {
      const h = entry.header;
      // The archive may end (or fail) while we are still awaiting fs calls below; remember
      // why, so that we never pipe from an entry that is already destroyed (that waits forever).
      let entryError: unknown = null;
      entry.on("error", (err: unknown) => (entryError ??= err));
      if (++entries > maxEntries) throw new TarEntryError(h.name, `archive has more than ${maxEntries} entries`);
      const parts = entryParts(h.name);
      const mode = (h.mode ?? 0o644) & 0o777;
      if (parts.length === 0) {
        if (h.type !== "directory") throw new TarEntryError(h.name, "names the target directory itself");
        entry.resume();
        continue;
      }
      const parent = await parentOf(h.name, parts);
      const path = join(parent, parts[parts.length - 1]!);
      switch (h.type) {
        case "directory": {
          const st = await lstatOrNull(path);
          if (!st) {
            await fsp.mkdir(path, { mode: mode | 0o700 });
            created.push(path);
          } else if (!st.isDirectory()) throw new TarEntryError(h.name, "something other than a directory already stands there");
          await fsp.chmod(path, mode | 0o700);
          if (h.mtime) dirTimes.push([path, h.mtime]);
          entry.resume();
          break;
        }
        case "file":
        case "contiguous-file": {
          const size = h.size ?? 0;
          if (declared + size > maxBytes) {
            throw options.tooBig?.(h.name, size, declared) ?? new TarEntryError(h.name, `declares ${size} bytes, which would take the archive past ${maxBytes} bytes`);
          }
          declared += size;
          await clearForReplace(h.name, path);
          const handle = await fsp.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
          created.push(path);
          const sink = handle.createWriteStream({ autoClose: true });
          if (entry.destroyed) {
            sink.destroy();
            throw entryError ?? new Error(`the archive ended inside '${h.name}'`);
          }
          await pipeline(entry, sink);
          bytes += sink.bytesWritten;
          await fsp.chmod(path, mode);
          if (h.mtime) await fsp.utimes(path, h.mtime, h.mtime);
          break;
        }
        case "symlink": {
          if (!h.linkname) throw new TarEntryError(h.name, "symlink without a target");
          if (h.linkname.includes("\0")) throw new TarEntryError(h.name, "symlink target contains a NUL byte");
          const target = linkTarget(h.name, parts, h.linkname, options);
          if (target === null) {
            entry.resume();
            break;
          }
          await clearForReplace(h.name, path);
          await fsp.symlink(target, path);
          created.push(path);
          entry.resume();
          break;
        }
        case "link": {
          const targetParts = entryParts(h.linkname ?? "");
          if (targetParts.length === 0) throw new TarEntryError(h.name, "hardlink without a target");
          const targetPath = join(await parentOf(h.name, targetParts), targetParts[targetParts.length - 1]!);
          const st = await lstatOrNull(targetPath);
          if (!st || !st.isFile()) throw new TarEntryError(h.name, `hardlink target '${h.linkname}' is not a file unpacked into the target directory`);
          await clearForReplace(h.name, path);
          await fsp.link(targetPath, path);
          created.push(path);
          entry.resume();
          break;
        }
        default:
          throw new TarEntryError(h.name, `is a ${h.type}; only files, directories, symlinks and hardlinks are allowed`);
      }
    }
    for (const [path, time] of dirTimes.reverse()) await fsp.utimes(path, time, time).catch(() => {});
    return { entries, bytes };
  } catch (err) {
    extract.destroy();
    source.destroy();
    for (const path of created.reverse()) await fsp.rm(path, { recursive: true, force: true }).catch(() => {});
    if (madeDest) await fsp.rm(madeDest, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

/**
 * The target to give a symlink entry at `parts`, or null to leave it out. Unless outside links
 * are kept, a link may only point inside the tree: relative, as some `../` (no more than its own
 * depth) then names only (a `..` after a name could climb out through another link, which is
 * resolved first), or absolute into `packedRoot` (rewritten as such a relative link).
 */
function linkTarget(name: string, parts: string[], linkname: string, options: UnpackOptions): string | null {
  const policy = options.outsideLinks ?? "keep";
  if (policy === "keep") return linkname;
  let target = linkname;
  const roots = typeof options.packedRoot === "string" ? [options.packedRoot] : (options.packedRoot ?? []);
  const root = roots.map((r) => r.replace(/\/+$/, "")).find((r) => r && (target === r || target.startsWith(`${r}/`)));
  if (root && target.startsWith("/")) {
    target = posix.relative(posix.join("/", ...parts.slice(0, -1)), posix.join("/", posix.relative(root, target))) || ".";
  }
  if (!target.startsWith("/")) {
    const steps = target.split("/").filter((p) => p !== "" && p !== ".");
    const up = steps.findIndex((p) => p !== "..");
    const climbs = up === -1 ? steps.length : up;
    if (climbs <= parts.length - 1 && !steps.slice(climbs).includes("..")) return target;
  }
  if (policy === "skip") return null;
  throw new TarEntryError(name, `is a symlink to '${linkname.slice(0, 512)}', outside what is being unpacked; a download never creates a link that leads out of its target (pass { symlinks: "skip" } to leave such links out)`);
}
