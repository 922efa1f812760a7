/**
 * `FsFile`, a file opened in the sandbox with `sandbox.fs.open` or `create`: read, write, seek
 * and the rest on one position, as Deno's `FsFile`. Only the connection that opened it may use
 * it, and it closes when that connection does. Bytes travel on flow-controlled streams.
 */
import { MAX_FILE_READ } from "@sbx/protocol";
import { collectBytes } from "../bytes.js";
import type { Connection } from "../connection.js";
import { ConnectionError, RpcError, SandboxNotFoundError } from "../errors.js";
import { toFileInfo, type FileInfo } from "./types.js";

/** Where `FsFile.seek` counts from. */
export enum SeekMode {
  Start = 0,
  Current = 1,
  End = 2,
}

/** Bytes `readable` asks for at a time. */
const CHUNK = 256 * 1024;
const CONSTRUCT = Symbol("FsFile");

/** Seconds since the epoch from a Date or a number of seconds (as Deno's docs have it). */
export const seconds = (t: number | Date) => (t instanceof Date ? t.getTime() / 1000 : t);

/**
 * An open file in the sandbox. Close it (or `await using` it) when done: a sandbox holds at
 * most 256 open files.
 *
 * @example
 * await using file = await sandbox.fs.open("data.bin", { read: true, write: true, create: true });
 * await file.write(new Uint8Array([0, 1, 2, 3]));
 * await file.seek(1, SeekMode.Start);
 * const buf = new Uint8Array(2);
 * await file.read(buf); // 2: buf is [1, 2]
 */
export class FsFile implements AsyncDisposable {
  #closed = false;
  readonly #conn: Connection;
  readonly #sandbox: string;
  readonly #handle: number;

  /** @internal */
  constructor(token: symbol, conn: Connection, sandbox: string, handle: number) {
    if (token !== CONSTRUCT) throw new TypeError("Can not construct FsFile, use 'sandbox.fs.open()' or 'sandbox.fs.create()'.");
    this.#conn = conn;
    this.#sandbox = sandbox;
    this.#handle = handle;
  }

  /** @internal */
  static of(conn: Connection, sandbox: string, handle: number): FsFile {
    return new FsFile(CONSTRUCT, conn, sandbox, handle);
  }

  private get target() {
    return { sandbox: this.#sandbox, handle: this.#handle };
  }

  /** The file's bytes from the current position on, as a stream (closing it does not close the file). */
  get readable(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const buf = new Uint8Array(CHUNK);
        const n = await this.read(buf);
        if (n === null) controller.close();
        else if (n > 0) controller.enqueue(buf.subarray(0, n));
      },
    });
  }

  /** Writes at the current position, chunk by chunk (closing it does not close the file). */
  get writable(): WritableStream<Uint8Array> {
    return new WritableStream<Uint8Array>({ write: async (chunk) => void (await this.write(chunk)) });
  }

  /** Reads into `p`: the number of bytes read (possibly 0 for a pipe with nothing yet), or null at the end of the file. */
  async read(p: Uint8Array): Promise<number | null> {
    const length = Math.min(p.byteLength, MAX_FILE_READ);
    if (length === 0) return 0;
    const stream = this.#conn.streams.incoming();
    let eof: boolean;
    try {
      ({ eof } = await this.#conn.request("fs.fileRead", { ...this.target, length, stream: stream.id }));
    } catch (err) {
      stream.fail(err as Error);
      throw err;
    }
    const bytes = await collectBytes(stream.readable, length);
    p.set(bytes, 0);
    return eof ? null : bytes.byteLength;
  }

  /** Writes all of `p` at the current position; resolves to the bytes written. */
  async write(p: Uint8Array): Promise<number> {
    const stream = this.#conn.streams.outgoing();
    const call = this.#conn.request("fs.fileWrite", { ...this.target, stream: stream.id });
    const writer = stream.writable.getWriter();
    const pump = writer.write(p).then(() => writer.close());
    pump.catch(() => {}); // when the call fails, its error is the one worth reporting
    const { bytesWritten } = await call;
    await pump;
    return bytesWritten;
  }

  /** Moves the position; resolves to the new one, in bytes from the start. */
  async seek(offset: number | bigint, whence: SeekMode): Promise<number> {
    const n = Number(offset);
    if (!Number.isSafeInteger(n)) throw new RangeError(`seek offset ${offset} is not a safe integer`);
    return (await this.#conn.request("fs.fileSeek", { ...this.target, offset: n, whence })).position;
  }

  async stat(): Promise<FileInfo> {
    return toFileInfo(await this.#conn.request("fs.fileStat", this.target));
  }

  /** Truncates (or extends) the file to `len` bytes; without `len`, empties it. */
  async truncate(len?: number): Promise<void> {
    await this.#conn.request("fs.fileTruncate", { ...this.target, ...(len !== undefined ? { len } : {}) });
  }

  /** Flushes data and metadata to disk. */
  async sync(): Promise<void> {
    await this.#conn.request("fs.fileSync", this.target);
  }

  /** Flushes data to disk. */
  async syncData(): Promise<void> {
    await this.#conn.request("fs.fileSync", { ...this.target, dataOnly: true });
  }

  /** Sets access and modification times: Dates, or seconds since the epoch. */
  async utime(atime: number | Date, mtime: number | Date): Promise<void> {
    await this.#conn.request("fs.fileUtime", { ...this.target, atime: seconds(atime), mtime: seconds(mtime) });
  }

  /** Takes an advisory lock (shared, or `exclusive`), waiting while another holds a conflicting one. */
  async lock(exclusive = false): Promise<void> {
    // The sandbox never waits (one call could hold up all of them): ask again until it is free.
    for (let wait = 10; ; wait = Math.min(wait * 2, 500)) {
      try {
        await this.#conn.request("fs.fileLock", { ...this.target, exclusive });
        return;
      } catch (err) {
        if (!(err instanceof RpcError && err.errno === "EAGAIN")) throw err;
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  async unlock(): Promise<void> {
    await this.#conn.request("fs.fileUnlock", this.target);
  }

  /** Closes the file; closing again does nothing, nor closing one whose connection or sandbox is gone (that closed it). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#conn.request("fs.fileClose", this.target);
    } catch (err) {
      if (!(err instanceof ConnectionError || err instanceof SandboxNotFoundError)) throw err;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
