import { constants as fsConstants, createReadStream } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ErrorCodes, pathSpellings } from "@sbx/protocol";
import { collectBytes } from "./bytes.js";
import { ResourceLimitError } from "./errors.js";
import type { Connection } from "./connection.js";
import { packTree } from "./tar/pack.js";
import { unpackTar } from "./tar/unpack.js";
import { TarEntryError } from "./tar/names.js";

/** What `stat` and `lstat` report. */
export interface FileInfo {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  size: number;
  mtime: Date | null;
  atime: Date | null;
  birthtime: Date | null;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
}

export interface DirEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

export interface WalkEntry extends DirEntry {
  /** Full path inside the sandbox. */
  path: string;
}

export interface WalkOptions {
  maxDepth?: number;
  includeFiles?: boolean;
  includeDirs?: boolean;
  includeSymlinks?: boolean;
  /** Only entries whose path matches one of these. */
  match?: RegExp[];
  /** Leave out (and do not descend into) entries whose path matches one of these. */
  skip?: RegExp[];
}

export interface WriteFileOptions {
  /** Permission bits for a new file (and applied after writing). */
  mode?: number;
  append?: boolean;
  /** Create the file if missing (default true). */
  create?: boolean;
  /** Fail if the file exists. */
  createNew?: boolean;
}

export type FileData = Uint8Array | string | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

/** Bytes `readFile` and `readTextFile` hold in memory at most, unless told otherwise. */
export const DEFAULT_MAX_READ_BYTES = 256 * 1024 * 1024;

export interface ReadFileOptions {
  /**
   * Fail (with {@link ResourceLimitError}) rather than hold more than this many bytes. Default
   * 256 MiB; read bigger files with `readFileStream`.
   */
  maxBytes?: number;
}

export interface DownloadOptions {
  /**
   * What to do with a symlink in a downloaded tree that leads out of it (absolute, or climbing
   * above the tree): "refuse" the download (default; nothing is left behind) or "skip" the link.
   * Links that stay inside the tree are kept; a single symlink downloaded by name is followed in
   * the sandbox and its content copied. No download ever creates a link leading out of its target.
   */
  symlinks?: "refuse" | "skip";
}

const encoder = new TextEncoder();

function toDate(ms: number | null): Date | null {
  return ms === null ? null : new Date(ms);
}

/**
 * The sandbox's file system. Paths are resolved inside the sandbox (relative ones against
 * /home/sandbox); nothing here can reach the host.
 */
export class SandboxFs {
  /** @internal */
  constructor(private readonly conn: Connection, private readonly sandbox: string) {}

  /** A file's contents as a stream; resolves once the file is open. */
  async readFileStream(path: string): Promise<ReadableStream<Uint8Array>> {
    const stream = this.conn.streams.incoming();
    try {
      await this.conn.request("fs.readFile", { sandbox: this.sandbox, path, stream: stream.id });
    } catch (err) {
      stream.fail(err as Error);
      throw err;
    }
    return stream.readable;
  }

  /** A whole file as bytes (at most `maxBytes`, default 256 MiB). */
  async readFile(path: string, options: ReadFileOptions = {}): Promise<Uint8Array> {
    const max = options.maxBytes ?? DEFAULT_MAX_READ_BYTES;
    const tooBig = () => new ResourceLimitError(`${path} holds more than maxBytes (${max} bytes); read it with readFileStream, or pass a larger { maxBytes }`, ErrorCodes.ResourceLimit);
    // Counted as the bytes come: the file may grow while it is read. (FIFOs and devices, which
    // could be endless, are refused by the sandbox with EINVAL.)
    return collectBytes(await this.readFileStream(path), max, tooBig);
  }

  /** A whole file as UTF-8 text (at most `maxBytes`, default 256 MiB). */
  async readTextFile(path: string, options: ReadFileOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.readFile(path, options));
  }

  /** Writes bytes, a string, or a stream to a file, with backpressure. */
  async writeFile(path: string, data: FileData, options: WriteFileOptions = {}): Promise<void> {
    const stream = this.conn.streams.outgoing();
    const call = this.conn.request("fs.writeFile", { sandbox: this.sandbox, path, stream: stream.id, ...options });
    const pump = pumpInto(data, stream.writable);
    pump.catch(() => {}); // when the call fails, its error is the one worth reporting
    await call;
    await pump;
  }

  async writeTextFile(path: string, text: string, options: WriteFileOptions = {}): Promise<void> {
    await this.writeFile(path, text, options);
  }

  async stat(path: string): Promise<FileInfo> {
    return this.info(await this.conn.request("fs.stat", { sandbox: this.sandbox, path }));
  }

  async lstat(path: string): Promise<FileInfo> {
    return this.info(await this.conn.request("fs.lstat", { sandbox: this.sandbox, path }));
  }

  /** The entries of a directory. */
  async *readDir(path: string): AsyncIterable<DirEntry> {
    yield* await this.conn.request("fs.readDir", { sandbox: this.sandbox, path });
  }

  async mkdir(path: string, options: { recursive?: boolean; mode?: number } = {}): Promise<void> {
    await this.conn.request("fs.mkdir", { sandbox: this.sandbox, path, ...options });
  }

  /** Removes a file, symlink or empty directory; with `recursive`, a whole tree. */
  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    await this.conn.request("fs.remove", { sandbox: this.sandbox, path, ...options });
  }

  async rename(from: string, to: string): Promise<void> {
    await this.conn.request("fs.rename", { sandbox: this.sandbox, from, to });
  }

  async copyFile(from: string, to: string): Promise<void> {
    await this.conn.request("fs.copyFile", { sandbox: this.sandbox, from, to });
  }

  async chmod(path: string, mode: number): Promise<void> {
    await this.conn.request("fs.chmod", { sandbox: this.sandbox, path, mode });
  }

  /** Creates a symlink at `path` pointing to `target`. */
  async symlink(target: string, path: string): Promise<void> {
    await this.conn.request("fs.symlink", { sandbox: this.sandbox, target, path });
  }

  async readLink(path: string): Promise<string> {
    return this.conn.request("fs.readLink", { sandbox: this.sandbox, path });
  }

  async realPath(path: string): Promise<string> {
    return this.conn.request("fs.realPath", { sandbox: this.sandbox, path });
  }

  /** Creates a new, uniquely named directory (in /tmp unless `dir` is given). */
  async makeTempDir(options: { dir?: string; prefix?: string; suffix?: string } = {}): Promise<string> {
    return this.conn.request("fs.makeTempDir", { sandbox: this.sandbox, ...options });
  }

  /** Walks a tree depth-first, like Deno's `walk`: the root first, then every entry below it. */
  async *walk(root: string, options: WalkOptions = {}): AsyncIterable<WalkEntry> {
    const base = await this.realPath(root);
    const { includeDirs = true, match } = options;
    if (includeDirs && (!match || match.some((r) => r.test(base)))) {
      yield { path: base, name: base.split("/").pop() || "/", isFile: false, isDirectory: true, isSymlink: false };
    }
    yield* this.walkBelow(base, options, 0);
  }

  private async *walkBelow(dir: string, options: WalkOptions, depth: number): AsyncIterable<WalkEntry> {
    const { maxDepth = Infinity, includeFiles = true, includeDirs = true, includeSymlinks = true, match, skip } = options;
    if (depth >= maxDepth) return;
    for await (const e of this.readDir(dir)) {
      const path = join(dir, e.name);
      if (skip?.some((r) => r.test(path))) continue;
      const wanted = (e.isFile && includeFiles) || (e.isDirectory && includeDirs) || (e.isSymlink && includeSymlinks);
      if (wanted && (!match || match.some((r) => r.test(path)))) yield { ...e, path };
      if (e.isDirectory) yield* this.walkBelow(path, options, depth + 1);
    }
  }

  /** Copies a local file or directory tree into the sandbox (trees travel as tar; symlinks stay symlinks). */
  async upload(localPath: string, sandboxPath: string): Promise<void> {
    const st = await fsp.lstat(localPath);
    if (st.isFile()) {
      await this.writeFile(sandboxPath, Readable.toWeb(createReadStream(localPath, { highWaterMark: 256 * 1024 })) as ReadableStream<Uint8Array>, { mode: st.mode & 0o777 });
      return;
    }
    if (st.isSymbolicLink()) return this.symlink(await fsp.readlink(localPath), sandboxPath);
    if (!st.isDirectory()) throw new Error(`${localPath} is neither a file, a symlink nor a directory`);
    const stream = this.conn.streams.outgoing();
    const call = this.conn.request("fs.upload", { sandbox: this.sandbox, path: sandboxPath, stream: stream.id });
    const { stream: tar, done } = packTree(localPath);
    const pump = pipeline(tar, Writable.fromWeb(stream.writable));
    const outcome = await Promise.allSettled([call, pump, done]);
    const failed = outcome.find((o): o is PromiseRejectedResult => o.status === "rejected");
    if (outcome[0].status === "rejected") throw outcome[0].reason;
    if (failed) throw failed.reason;
  }

  /**
   * Copies a sandbox file or tree to the local disk. Nothing it writes lands outside `localPath`
   * or leads out of it: tree entries that would are refused, symlinks that point out of the tree
   * are refused (or skipped, see {@link DownloadOptions}), and special files (FIFOs, devices,
   * sockets) are never copied (EINVAL for one named directly, refused inside a tree).
   */
  async download(sandboxPath: string, localPath: string, options: DownloadOptions = {}): Promise<void> {
    // stat, not lstat: a symlink named directly is followed in the sandbox (its content is copied, never the link).
    const st = await this.stat(sandboxPath);
    if (!st.isDirectory) {
      // The sandbox refuses FIFOs, devices and sockets (EINVAL): only regular files are read.
      const body = await this.readFileStream(sandboxPath);
      // O_NOFOLLOW: never written through a symlink standing at localPath (ELOOP says so instead).
      const handle = await fsp.open(localPath, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW, st.mode & 0o777);
      await pipeline(Readable.fromWeb(body as never), handle.createWriteStream());
      return;
    }
    const root = await this.realPath(sandboxPath);
    const stream = this.conn.streams.incoming();
    const call = this.conn.request("fs.download", { sandbox: this.sandbox, path: sandboxPath, stream: stream.id });
    const unpack = unpackTar(Readable.fromWeb(stream.readable as never), localPath, { outsideLinks: options.symlinks ?? "refuse", packedRoot: pathSpellings(root) });
    const [called, unpacked] = await Promise.allSettled([call, unpack]);
    // An entry refused here is the cause; the sandbox's side then fails only because we stopped reading.
    if (unpacked.status === "rejected" && unpacked.reason instanceof TarEntryError) throw unpacked.reason;
    if (called.status === "rejected") {
      stream.fail(called.reason);
      throw called.reason;
    }
    if (unpacked.status === "rejected") throw unpacked.reason;
  }

  private info(raw: { mtime: number | null; atime: number | null; birthtime: number | null } & Omit<FileInfo, "mtime" | "atime" | "birthtime">): FileInfo {
    return { ...raw, mtime: toDate(raw.mtime), atime: toDate(raw.atime), birthtime: toDate(raw.birthtime) };
  }
}

/** Feeds bytes, text, a Web stream or an async iterable into a WritableStream, closing it at the end. */
async function pumpInto(data: FileData, writable: WritableStream<Uint8Array>): Promise<void> {
  if (typeof data === "string" || data instanceof Uint8Array) {
    const writer = writable.getWriter();
    try {
      await writer.write(typeof data === "string" ? encoder.encode(data) : data);
      await writer.close();
    } catch (err) {
      await writer.abort(err).catch(() => {});
      throw err;
    }
    return;
  }
  if (data instanceof ReadableStream) return data.pipeTo(writable);
  const writer = writable.getWriter();
  try {
    for await (const chunk of data) await writer.write(chunk);
    await writer.close();
  } catch (err) {
    await writer.abort(err).catch(() => {});
    throw err;
  }
}
