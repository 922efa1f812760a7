import { ErrorCodes, SANDBOX_HOME } from "@sbx/protocol";
import { collectBytes } from "../bytes.js";
import { ResourceLimitError } from "../errors.js";
import type { Connection } from "../connection.js";
import type { IncomingStream } from "../streams.js";
import { FsFile, seconds } from "./file.js";
import { expandGlob } from "./glob.js";
import { abortable, pathOf } from "./paths.js";
import { download, upload } from "./transfer.js";
import {
  DEFAULT_MAX_READ_BYTES, toFileInfo,
  type DirEntry, type DownloadOptions, type ExpandGlobOptions, type FileData, type FileInfo, type MkdirOptions, type OpenOptions,
  type PathLike, type ReadFileOptions, type RemoveOptions, type WalkEntry, type WalkOptions, type WriteFileOptions,
} from "./types.js";
import { walk } from "./walk.js";

const encoder = new TextEncoder();

/**
 * The sandbox's file system, with the methods of Deno's `sandbox.fs`. Paths are strings or
 * `file:` URLs resolved inside the sandbox (relative ones against /home/sandbox); nothing here
 * can reach the host. Failures are `RpcError`s whose `errno` names the cause (ENOENT, EACCES...).
 */
export class SandboxFs {
  /** @internal */
  constructor(private readonly conn: Connection, private readonly sandbox: string) {}

  private async openRead(path: PathLike): Promise<IncomingStream> {
    const stream = this.conn.streams.incoming();
    try {
      await this.conn.request("fs.readFile", { sandbox: this.sandbox, path: pathOf(path), stream: stream.id });
    } catch (err) {
      stream.fail(err as Error);
      throw err;
    }
    return stream;
  }

  /** A file's contents as a stream; resolves once the file is open. */
  async readFileStream(path: PathLike): Promise<ReadableStream<Uint8Array>> {
    return (await this.openRead(path)).readable;
  }

  /** A whole file as bytes (at most `maxBytes`, default 256 MiB). */
  async readFile(path: PathLike, options: ReadFileOptions = {}): Promise<Uint8Array> {
    const max = options.maxBytes ?? DEFAULT_MAX_READ_BYTES;
    const tooBig = () => new ResourceLimitError(`${pathOf(path)} holds more than maxBytes (${max} bytes); read it with readFileStream, or pass a larger { maxBytes }`, ErrorCodes.ResourceLimit);
    let body: IncomingStream | null = null;
    // Counted as the bytes come: the file may grow while it is read. (FIFOs and devices, which
    // could be endless, are refused by the sandbox with EINVAL.)
    return abortable(
      options.signal,
      async () => {
        body = await this.openRead(path);
        if (options.signal?.aborted) body.abort(options.signal.reason);
        return collectBytes(body.readable, max, tooBig);
      },
      () => body?.abort(options.signal!.reason),
    );
  }

  /** A whole file as UTF-8 text (at most `maxBytes`, default 256 MiB). */
  async readTextFile(path: PathLike, options: ReadFileOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.readFile(path, options));
  }

  /** Writes bytes, a string, or a stream to a file (replaced atomically unless appending), with backpressure. */
  async writeFile(path: PathLike, data: FileData, options: WriteFileOptions = {}): Promise<void> {
    const { signal, ...rest } = options;
    const stream = this.conn.streams.outgoing();
    signal?.throwIfAborted();
    const call = this.conn.request("fs.writeFile", { sandbox: this.sandbox, path: pathOf(path), stream: stream.id, ...rest });
    // An abort fails the stream: the sandbox drops what it got and keeps the old content.
    const pump = abortable(signal, () => pumpInto(data, stream.writable), () => stream.abort(signal!.reason));
    pump.catch(() => {}); // when the call fails, its error is the one worth reporting (unless aborted)
    await abortable(signal, () => call, () => {});
    await pump;
  }

  /** Writes text, or a stream of strings, as UTF-8. */
  async writeTextFile(path: PathLike, data: string | ReadableStream<string>, options: WriteFileOptions = {}): Promise<void> {
    await this.writeFile(path, typeof data === "string" ? data : data.pipeThrough(new TextEncoderStream()), options);
  }

  /** Information about a file, following symlinks. */
  async stat(path: PathLike): Promise<FileInfo> {
    return toFileInfo(await this.conn.request("fs.stat", { sandbox: this.sandbox, path: pathOf(path) }));
  }

  /** Information about a file; for a symlink, about the link itself. */
  async lstat(path: PathLike): Promise<FileInfo> {
    return toFileInfo(await this.conn.request("fs.lstat", { sandbox: this.sandbox, path: pathOf(path) }));
  }

  /** The entries of a directory (fetched when iteration starts; errors surface there). */
  async *readDir(path: PathLike): AsyncIterable<DirEntry> {
    yield* await this.conn.request("fs.readDir", { sandbox: this.sandbox, path: pathOf(path) });
  }

  /** Creates a directory; with `recursive`, its missing parents too (and an existing one is fine). */
  async mkdir(path: PathLike, options: MkdirOptions = {}): Promise<void> {
    await this.conn.request("fs.mkdir", { sandbox: this.sandbox, path: pathOf(path), ...options });
  }

  /** Removes a file, symlink or empty directory; with `recursive`, a whole tree. */
  async remove(path: PathLike, options: RemoveOptions = {}): Promise<void> {
    await this.conn.request("fs.remove", { sandbox: this.sandbox, path: pathOf(path), ...options });
  }

  /** Renames (moves) a path, replacing a file at the new one. */
  async rename(oldPath: PathLike, newPath: PathLike): Promise<void> {
    await this.conn.request("fs.rename", { sandbox: this.sandbox, from: pathOf(oldPath), to: pathOf(newPath) });
  }

  /** Copies a file's contents and permissions, creating or replacing the target. */
  async copyFile(fromPath: PathLike, toPath: PathLike): Promise<void> {
    await this.conn.request("fs.copyFile", { sandbox: this.sandbox, from: pathOf(fromPath), to: pathOf(toPath) });
  }

  /** Sets permission bits (the umask does not apply). */
  async chmod(path: PathLike, mode: number): Promise<void> {
    await this.conn.request("fs.chmod", { sandbox: this.sandbox, path: pathOf(path), mode });
  }

  /** Changes owner and group; null leaves one as it is. (Inside, only the sandbox user's own ids exist.) */
  async chown(path: PathLike, uid: number | null, gid: number | null): Promise<void> {
    await this.conn.request("fs.chown", { sandbox: this.sandbox, path: pathOf(path), uid, gid });
  }

  /** Creates a symlink at `path` pointing to `target` (stored as given; `options.type` is accepted for Deno's sake). */
  async symlink(target: PathLike, path: PathLike, _options?: { type?: "file" | "dir" | "junction" }): Promise<void> {
    await this.conn.request("fs.symlink", { sandbox: this.sandbox, target: pathOf(target), path: pathOf(path) });
  }

  /** Creates `path` as a hard link to `target`. */
  async link(target: PathLike, path: PathLike): Promise<void> {
    await this.conn.request("fs.link", { sandbox: this.sandbox, target: pathOf(target), path: pathOf(path) });
  }

  /** The target a symlink stores. */
  async readLink(path: PathLike): Promise<string> {
    return this.conn.request("fs.readLink", { sandbox: this.sandbox, path: pathOf(path) });
  }

  /** The absolute path with every symlink resolved. */
  async realPath(path: PathLike): Promise<string> {
    return this.conn.request("fs.realPath", { sandbox: this.sandbox, path: pathOf(path) });
  }

  /** Creates a new, uniquely named directory (in /tmp unless `dir` is given) and resolves to its path. */
  async makeTempDir(options: { dir?: string; prefix?: string; suffix?: string } = {}): Promise<string> {
    return this.conn.request("fs.makeTempDir", { sandbox: this.sandbox, ...options });
  }

  /** Creates a new, uniquely named empty file (in /tmp unless `dir` is given) and resolves to its path. */
  async makeTempFile(options: { dir?: string; prefix?: string; suffix?: string } = {}): Promise<string> {
    return this.conn.request("fs.makeTempFile", { sandbox: this.sandbox, ...options });
  }

  /** Truncates (or extends) a file to `len` bytes; without `len`, empties it. */
  async truncate(name: PathLike, len?: number): Promise<void> {
    await this.conn.request("fs.truncate", { sandbox: this.sandbox, path: pathOf(name), ...(len !== undefined ? { len } : {}) });
  }

  /** The umask of the sandbox's file calls and later processes; with `mask`, sets it. Resolves to the one before. */
  async umask(mask?: number): Promise<number> {
    return this.conn.request("fs.umask", { sandbox: this.sandbox, ...(mask !== undefined ? { mask } : {}) });
  }

  /** Sets access and modification times: Dates, or seconds since the epoch. */
  async utime(path: PathLike, atime: number | Date, mtime: number | Date): Promise<void> {
    await this.conn.request("fs.utime", { sandbox: this.sandbox, path: pathOf(path), atime: seconds(atime), mtime: seconds(mtime) });
  }

  /** Opens a file as an {@link FsFile} (read-only unless options say otherwise). */
  async open(path: PathLike, options: OpenOptions = {}): Promise<FsFile> {
    const { handle } = await this.conn.request("fs.open", { sandbox: this.sandbox, path: pathOf(path), ...options });
    return FsFile.of(this.conn, this.sandbox, handle);
  }

  /** Creates a file (emptying an existing one) and opens it for reading and writing. */
  async create(path: PathLike): Promise<FsFile> {
    return this.open(path, { read: true, write: true, create: true, truncate: true });
  }

  /**
   * Walks a tree like Deno's `walk` (`@std/fs`): the root first, then every entry below it;
   * paths are relative when `root` is.
   *
   * @example
   * for await (const e of sandbox.fs.walk("project", { exts: ["ts"], skip: [/node_modules/] })) console.log(e.path);
   */
  walk(root: PathLike, options: WalkOptions = {}): AsyncIterableIterator<WalkEntry> {
    return walk(this, pathOf(root), options);
  }

  /**
   * The entries matching a glob, like Deno's `expandGlob` (`@std/fs`): absolute paths, sorted;
   * a relative glob starts at `options.root` (default the home).
   *
   * @example
   * for await (const e of sandbox.fs.expandGlob("**\/*.json", { root: "/app" })) console.log(e.path);
   */
  expandGlob(glob: PathLike, options: ExpandGlobOptions = {}): AsyncIterableIterator<WalkEntry> {
    return expandGlob(this, pathOf(glob), SANDBOX_HOME, options);
  }

  /**
   * Copies a local file or directory into the sandbox like `cp -r`: to `sandboxPath`, or into it
   * under its own name when it is an existing directory. Trees travel as tar; symlinks stay symlinks.
   */
  async upload(localPath: PathLike, sandboxPath: PathLike): Promise<void> {
    await upload(this.conn, this.sandbox, this, pathOf(localPath), pathOf(sandboxPath));
  }

  /**
   * Copies a sandbox file or tree to this machine like `cp -r`: to `localPath`, or into it under
   * its own name when it is an existing directory. Nothing it writes lands outside its target or
   * leads out of it: tree entries that would are refused, symlinks out of the tree are refused (or
   * skipped, see {@link DownloadOptions}), and special files (FIFOs, devices, sockets) are never
   * copied (EINVAL for one named directly, refused inside a tree). It writes at most `maxBytes`
   * (default 10 GiB) of file content, counting each file at the size the sandbox declares for it
   * (a sparse file at its full apparent size) before writing any of it; past that it fails with
   * `ResourceLimitError`. A failed download removes what it had created and stops the sandbox
   * sending; files that stood at the target before are left as they were (a file downloaded over
   * one replaces it only once all of it arrived).
   */
  async download(sandboxPath: PathLike, localPath: PathLike, options: DownloadOptions = {}): Promise<void> {
    await download(this.conn, this.sandbox, this, pathOf(sandboxPath), pathOf(localPath), options);
  }
}

/** Feeds bytes, text, a Web stream or an async iterable into a WritableStream, closing it at the end. */
async function pumpInto(data: FileData, writable: WritableStream<Uint8Array>): Promise<void> {
  if (data instanceof ReadableStream) return data.pipeTo(writable);
  const writer = writable.getWriter();
  try {
    if (typeof data === "string" || data instanceof Uint8Array) await writer.write(typeof data === "string" ? encoder.encode(data) : data);
    else for await (const chunk of data) await writer.write(chunk);
    await writer.close();
  } catch (err) {
    await writer.abort(err).catch(() => {});
    throw err;
  }
}
