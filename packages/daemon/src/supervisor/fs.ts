import { constants, type Stats } from "node:fs";
import * as fsp from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { MAX_CHUNK } from "@sbx/protocol/frames";
import { CallError, fsError } from "./errors.js";
import type { InStream, OutStream } from "./link.js";
import { HOME } from "./spawn.js";

const at = (path: string) => resolve(HOME, path);

function info(st: Stats) {
  return {
    isFile: st.isFile(),
    isDirectory: st.isDirectory(),
    isSymlink: st.isSymbolicLink(),
    size: st.size,
    mtime: st.mtimeMs,
    atime: st.atimeMs,
    birthtime: st.birthtimeMs || null,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
  };
}

type P = Record<string, any>;

/** File operations, run as the sandbox user inside the sandbox: the kernel confines every path. */
export const fsOps = {
  async "fs.stat"(p: P) {
    return info(await fsp.stat(at(p.path)));
  },
  async "fs.lstat"(p: P) {
    return info(await fsp.lstat(at(p.path)));
  },
  async "fs.readDir"(p: P) {
    const entries = await fsp.readdir(at(p.path), { withFileTypes: true });
    return entries.map((e) => ({ name: e.name, isFile: e.isFile(), isDirectory: e.isDirectory(), isSymlink: e.isSymbolicLink() }));
  },
  async "fs.mkdir"(p: P) {
    await fsp.mkdir(at(p.path), { recursive: p.recursive ?? false, mode: p.mode ?? 0o777 });
    return null;
  },
  async "fs.remove"(p: P) {
    const path = at(p.path);
    const st = await fsp.lstat(path);
    if (st.isDirectory()) await (p.recursive ? fsp.rm(path, { recursive: true }) : fsp.rmdir(path));
    else await fsp.unlink(path);
    return null;
  },
  async "fs.rename"(p: P) {
    await fsp.rename(at(p.from), at(p.to));
    return null;
  },
  async "fs.copyFile"(p: P) {
    await fsp.copyFile(at(p.from), at(p.to));
    return null;
  },
  async "fs.chmod"(p: P) {
    await fsp.chmod(at(p.path), p.mode);
    return null;
  },
  async "fs.symlink"(p: P) {
    await fsp.symlink(p.target, at(p.path));
    return null;
  },
  async "fs.readLink"(p: P) {
    return await fsp.readlink(at(p.path));
  },
  async "fs.realPath"(p: P) {
    return await fsp.realpath(at(p.path));
  },
  async "fs.makeTempDir"(p: P) {
    const dir = at(p.dir ?? "/tmp");
    for (let attempt = 0; attempt < 16; attempt++) {
      const path = join(dir, `${p.prefix ?? "tmp-"}${randomBytes(6).toString("hex")}${p.suffix ?? ""}`);
      try {
        await fsp.mkdir(path, { mode: 0o700 });
        return path;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    }
    throw new CallError("FileSystem", `could not create a unique directory in ${dir}`, "EEXIST");
  },
};

/** Opens a file and streams it out; resolves with its size once open. */
export async function readFile(path: string, out: OutStream): Promise<{ size: number }> {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
  const handle = await fsp.open(at(path), constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw Object.assign(new Error(`EISDIR: illegal operation on a directory, read '${at(path)}'`), { code: "EISDIR" });
    // A FIFO or a device can be endless; only regular files are read.
    if (!st.isFile()) throw Object.assign(new Error(`EINVAL: not a regular file (a FIFO, device or socket), read '${at(path)}'`), { code: "EINVAL" });
    out.attach(handle.createReadStream({ highWaterMark: MAX_CHUNK, autoClose: true }));
    return { size: st.size };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Writes what arrives on `input` to a file; resolves once it is closed. */
export async function writeFile(p: P, input: InStream): Promise<{ bytesWritten: number }> {
  const flags = p.append
    ? constants.O_WRONLY | constants.O_APPEND | (p.create === false ? 0 : constants.O_CREAT)
    : constants.O_WRONLY | constants.O_TRUNC | (p.create === false ? 0 : constants.O_CREAT) | (p.createNew ? constants.O_EXCL | constants.O_CREAT : 0);
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(at(p.path), flags, p.mode ?? 0o644);
  } catch (err) {
    input.fail((err as Error).message);
    throw err;
  }
  // flush: fsync before close. Acknowledged means on disk: a write the disk cannot keep (the
  // host's disk full under a sparse image) fails here, not later and silently.
  const sink = handle.createWriteStream({ autoClose: true, flush: true });
  // The sink's own error (ENOSPC, EIO, EFBIG...) is the one worth reporting, not the abort it causes.
  let sinkError: Error | null = null;
  const closed = new Promise<void>((resolveClosed, reject) => {
    sink.once("close", () => (sinkError ? reject(sinkError) : resolveClosed()));
    sink.once("error", (err) => reject((sinkError ??= err)));
  });
  closed.catch(() => {});
  input.attach(sink);
  try {
    await input.whenEnded();
  } catch (err) {
    sink.destroy();
    throw sinkError ?? new CallError("StreamFailed", `upload of ${at(p.path)} was aborted: ${(err as Error).message}`);
  }
  await closed;
  if (p.mode !== undefined) await fsp.chmod(at(p.path), p.mode);
  return { bytesWritten: sink.bytesWritten };
}

/** Extracts a tar archive arriving on `input` into a directory. */
export async function upload(path: string, input: InStream) {
  const { PassThrough } = await import("node:stream");
  const pipe = new PassThrough({ highWaterMark: MAX_CHUNK });
  input.attach(pipe);
  const { unpackTar } = await import("@sbx/client/tar");
  try {
    return await unpackTar(pipe, at(path));
  } catch (err) {
    input.fail((err as Error).message);
    throw new CallError("FileSystem", (err as Error).message, (err as NodeJS.ErrnoException).code);
  }
}

/** Streams the tree at `path` out as a tar archive; resolves once it is all sent. */
export async function download(path: string, out: OutStream) {
  const root = at(path);
  await fsp.lstat(root);
  const { packTree } = await import("@sbx/client/tar");
  const { stream, done } = packTree(root);
  out.attach(stream);
  return await done;
}

export { fsError };
