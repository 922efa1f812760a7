/**
 * `upload` and `download` between this machine and a sandbox, like `cp -r`: a source lands at
 * the target, or inside it under its own name when the target is an existing directory. Trees
 * travel as one tar stream, unpacked by hardened code on the receiving side.
 */
import { constants as fsConstants, createReadStream, type Stats } from "node:fs";
import * as fsp from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join, posix, resolve } from "node:path";
import { Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ErrorCodes, pathSpellings } from "@sbx/protocol";
import type { Connection } from "../connection.js";
import { ResourceLimitError, RpcError } from "../errors.js";
import { packTree } from "../tar/pack.js";
import { unpackTar } from "../tar/unpack.js";
import { TarEntryError } from "../tar/names.js";
import { DEFAULT_MAX_DOWNLOAD_BYTES, type DownloadOptions, type FileInfo } from "./types.js";

/** What moving files needs of `sandbox.fs`. */
export interface TransferFs {
  stat(path: string): Promise<FileInfo>;
  realPath(path: string): Promise<string>;
  symlink(target: string, path: string): Promise<void>;
  writeFile(path: string, data: ReadableStream<Uint8Array>, options: { mode: number }): Promise<void>;
  readFileStream(path: string): Promise<ReadableStream<Uint8Array>>;
}

async function statOrNull(fs: TransferFs, path: string): Promise<FileInfo | null> {
  try {
    return await fs.stat(path);
  } catch (err) {
    if (err instanceof RpcError && (err.errno === "ENOENT" || err.errno === "ENOTDIR")) return null;
    throw err;
  }
}

/** Copies a local file, symlink or directory tree into the sandbox at `target`, or into it when it is a directory. */
export async function upload(conn: Connection, sandbox: string, fs: TransferFs, local: string, target: string): Promise<void> {
  const st = await fsp.lstat(local);
  const name = basename(resolve(local));
  const into = (await statOrNull(fs, target))?.isDirectory && name ? posix.join(target, name) : target;
  if (st.isFile()) {
    return fs.writeFile(into, Readable.toWeb(createReadStream(local, { highWaterMark: 256 * 1024 })) as ReadableStream<Uint8Array>, { mode: st.mode & 0o777 });
  }
  if (st.isSymbolicLink()) return fs.symlink(await fsp.readlink(local), into);
  if (!st.isDirectory()) throw new Error(`${local} is neither a file, a symlink nor a directory`);
  const stream = conn.streams.outgoing();
  const call = conn.request("fs.upload", { sandbox, path: into, stream: stream.id });
  const { stream: tar, done } = packTree(local);
  const pump = pipeline(tar, Writable.fromWeb(stream.writable));
  const outcome = await Promise.allSettled([call, pump, done]);
  const failed = outcome.find((o): o is PromiseRejectedResult => o.status === "rejected");
  if (outcome[0].status === "rejected") throw outcome[0].reason;
  if (failed) throw failed.reason;
}

/** Where a single-file download writes: the file it made, or beside the one that stood there. */
interface DownloadTarget {
  handle: fsp.FileHandle;
  /** The download made `into` (and removes it again if it fails). */
  created: boolean;
  /** Where the bytes go when a regular file stood at `into`: renamed over it once all arrived. */
  temp: string | null;
}

/**
 * Opens `into` for a download: created (`mode`) when nothing is there; when a regular file is, a
 * temporary file beside it takes the bytes (its mode, umask aside, as an overwrite in place kept
 * it), so a failure leaves it as it was; a device or FIFO is written in place, as open(2) would.
 * O_NOFOLLOW throughout: a symlink standing at the target is ELOOP, never written through.
 */
async function openTarget(into: string, mode: number): Promise<DownloadTarget> {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fsConstants;
  try {
    return { handle: await fsp.open(into, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode), created: true, temp: null };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  // Opened (not truncated) to be refused as before: a symlink, a directory, no permission. O_NONBLOCK: a FIFO nobody reads is ENXIO, not a wait.
  const old = await fsp.open(into, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
  let was: Stats;
  try {
    was = await old.stat();
    // Written in place, blocking (a pipe's reader may be slower than we are): the FIFO has a reader now, so this open returns at once.
    if (!was.isFile()) return { handle: await fsp.open(into, O_WRONLY | O_NOFOLLOW), created: false, temp: null };
  } finally {
    await old.close();
  }
  // Not named after the file: a name near NAME_MAX would make it too long.
  const temp = join(dirname(into), `.sbx-download-${randomBytes(6).toString("hex")}`);
  const handle = await fsp.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    await handle.chmod(was.mode & 0o777);
  } catch (err) {
    await handle.close();
    await fsp.unlink(temp).catch(() => {});
    throw err;
  }
  return { handle, created: false, temp };
}

/**
 * Copies a sandbox file or tree to `local`, or into it when it is an existing directory.
 * Nothing it writes lands outside its target or leads out of it: tree entries that would are
 * refused, symlinks out of the tree refused (or skipped), special files never copied. At most
 * `maxBytes` of file content is written (sizes as the sandbox declares them, checked before a
 * file's bytes are written); when a download fails, what it created is removed again and the
 * sandbox stops sending. A file downloaded over an existing one replaces it only once all of it
 * arrived (a temporary file beside it, renamed over it): a failure leaves the old one as it was.
 */
export async function download(conn: Connection, sandbox: string, fs: TransferFs, source: string, local: string, options: DownloadOptions = {}): Promise<void> {
  const max = options.maxBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
  if (!Number.isSafeInteger(max) || max < 0) throw new TypeError(`download: maxBytes must be a non-negative integer number of bytes, not ${String(max)}`);
  const tooBig = (path: string, size: number, sofar: number) =>
    new ResourceLimitError(
      `downloading ${source} would write more than maxBytes (${max} bytes): ${path} is ${size} bytes${sofar ? ` after ${sofar} already` : ""}; pass a larger { maxBytes } to download it`,
      ErrorCodes.ResourceLimit,
    );
  // stat, not lstat: a symlink named directly is followed in the sandbox (its content is copied, never the link).
  const st = await fs.stat(source);
  const root = await fs.realPath(source);
  const existing = await fsp.stat(local).catch(() => null);
  // The name comes from the sandbox: only a plain one may lead below `local` (never "..").
  const name = posix.basename(root);
  const into = existing?.isDirectory() && name !== "" && name !== "." && name !== ".." ? join(local, name) : local;
  if (!st.isDirectory) {
    // Refused before anything is opened on either side; counted again as the bytes come (it may grow).
    if (st.size > max) throw tooBig(source, st.size, 0);
    // The sandbox refuses FIFOs, devices and sockets (EINVAL): only regular files are read.
    const body = await fs.readFileStream(source);
    let target: DownloadTarget;
    try {
      target = await openTarget(into, st.mode & 0o777);
    } catch (err) {
      await body.cancel(err).catch(() => {});
      throw err;
    }
    const { handle, created, temp } = target;
    let got = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _enc, done) {
        got += chunk.byteLength;
        done(got > max ? new ResourceLimitError(`${source} grew past maxBytes (${max} bytes) while it was downloaded; pass a larger { maxBytes } to download it`, ErrorCodes.ResourceLimit) : null, chunk);
      },
    });
    try {
      // A failure destroys the body, which cancels the stream: the sandbox stops sending.
      await pipeline(Readable.fromWeb(body as never), limit, handle.createWriteStream());
      if (temp) await fsp.rename(temp, into);
    } catch (err) {
      // Only what this download created is removed: a file that stood there is the caller's, untouched.
      if (temp) await fsp.unlink(temp).catch(() => {});
      if (created) await fsp.unlink(into).catch(() => {});
      throw err;
    }
    return;
  }
  const stream = conn.streams.incoming();
  const call = conn.request("fs.download", { sandbox, path: source, stream: stream.id });
  const unpack = unpackTar(Readable.fromWeb(stream.readable as never), into, {
    outsideLinks: options.symlinks ?? "refuse",
    packedRoot: pathSpellings(root),
    maxBytes: max,
    tooBig: (entry, size, sofar) => tooBig(posix.join(source, entry), size, sofar),
  });
  const [called, unpacked] = await Promise.allSettled([call, unpack]);
  // An entry refused here (or the limit) is the cause; the sandbox's side then fails only because we stopped reading.
  if (unpacked.status === "rejected" && (unpacked.reason instanceof TarEntryError || unpacked.reason instanceof ResourceLimitError)) throw unpacked.reason;
  if (called.status === "rejected") {
    stream.fail(called.reason);
    throw called.reason;
  }
  if (unpacked.status === "rejected") throw unpacked.reason;
}
