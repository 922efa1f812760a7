/**
 * The parts of `sandbox.fs` that follow Deno's: FsFile (open/create and its calls), link,
 * truncate, umask, utime, chown, makeTempFile, URL paths, `{ signal }`, cp -r style transfers,
 * walk's options and expandGlob. Open files belong to the connection that opened them.
 */
import { randomBytes } from "node:crypto";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FsFile, RpcError, Sandbox, SeekMode } from "@sbx/client";
import { useSandbox } from "../helpers/fixtures.js";
import { RawClient } from "../helpers/raw.js";

const { daemon, sb } = useSandbox();
let hostTmp: string;
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

async function errnoOf(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (err === null) throw new Error("expected a rejection");
  expect(err).toBeInstanceOf(RpcError);
  return (err as RpcError).errno;
}

async function list<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function testDir(name: string): Promise<string> {
  const dir = `/home/sandbox/d-${name}-${randomBytes(3).toString("hex")}`;
  await sb.fs.mkdir(dir);
  return dir;
}

beforeAll(async () => {
  hostTmp = await fsp.mkdtemp(join(tmpdir(), "sbx-deno-fs-"));
});

afterAll(async () => {
  if (hostTmp) await fsp.rm(hostTmp, { recursive: true, force: true });
});

describe("FsFile", () => {
  it("writes, seeks, reads, stats, truncates and closes on one position (Deno's examples)", async () => {
    const dir = await testDir("file");
    const file = await sb.fs.open(`${dir}/data.bin`, { read: true, write: true, create: true });
    expect(file).toBeInstanceOf(FsFile);
    expect(await file.write(bytes("hello world"))).toBe(11);
    expect(await file.seek(6, SeekMode.Start)).toBe(6);
    const buf = new Uint8Array(16);
    const n = await file.read(buf);
    expect(n).toBe(5);
    expect(text(buf.subarray(0, 5))).toBe("world");
    expect(await file.read(buf)).toBeNull(); // the end
    expect(await file.seek(-5, SeekMode.End)).toBe(6);
    expect(await file.seek(2n, SeekMode.Current)).toBe(8);
    const st = await file.stat();
    expect(st).toMatchObject({ isFile: true, size: 11 });
    expect(st.mode & 0o170000).toBe(0o100000);
    await file.truncate(5);
    expect((await file.stat()).size).toBe(5);
    await file.sync();
    await file.syncData();
    await file.utime(new Date(1_000_000_000_000), 1_500_000_000);
    expect((await file.stat()).mtime.getTime()).toBe(1_500_000_000_000);
    await file.close();
    await file.close(); // a second close does nothing
    expect(await sb.fs.readTextFile(`${dir}/data.bin`)).toBe("hello");
    await expect(file.read(buf)).rejects.toThrow(/EBADF/);
  });

  it("readable and writable stream through the same position; create empties; await using closes", async () => {
    const dir = await testDir("streams");
    const big = randomBytes(600_000);
    {
      await using file = await sb.fs.create(`${dir}/s.bin`);
      await new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(big.subarray(0, 300_000));
          c.enqueue(big.subarray(300_000));
          c.close();
        },
      }).pipeTo(file.writable);
      await file.seek(0, SeekMode.Start);
      const back = new Uint8Array(await new Response(file.readable).arrayBuffer());
      expect(Buffer.from(back).equals(big)).toBe(true);
    }
    const again = await sb.fs.create(`${dir}/s.bin`);
    expect((await again.stat()).size).toBe(0);
    await again.close();
  });

  it("open follows Deno's flags: read-only by default, createNew, append, and errors by errno", async () => {
    const dir = await testDir("flags");
    await sb.fs.writeTextFile(`${dir}/f`, "abc");
    const ro = await sb.fs.open(`${dir}/f`);
    expect(await errnoOf(ro.write(bytes("x")))).toBe("EBADF");
    await ro.close();
    expect(await errnoOf(sb.fs.open(`${dir}/missing`))).toBe("ENOENT");
    expect(await errnoOf(sb.fs.open(`${dir}/f`, { write: true, createNew: true }))).toBe("EEXIST");
    expect(await errnoOf(sb.fs.open(`${dir}/f`, { create: true }))).toBe("EINVAL"); // create needs write
    const ap = await sb.fs.open(`${dir}/f`, { append: true });
    await ap.write(bytes("def"));
    await ap.close();
    expect(await sb.fs.readTextFile(`${dir}/f`)).toBe("abcdef");
    const fresh = await sb.fs.open(`${dir}/new`, { write: true, createNew: true, mode: 0o600 });
    await fresh.close();
    expect((await sb.fs.stat(`${dir}/new`)).mode & 0o777).toBe(0o600);
  });

  it("lock waits while another handle holds an exclusive lock", async () => {
    const dir = await testDir("lock");
    await sb.fs.writeTextFile(`${dir}/l`, "");
    const a = await sb.fs.open(`${dir}/l`, { read: true, write: true });
    const b = await sb.fs.open(`${dir}/l`, { read: true, write: true });
    await a.lock(true);
    let got = false;
    const waiting = b.lock(true).then(() => (got = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toBe(false);
    await a.unlock();
    await waiting;
    expect(got).toBe(true);
    await b.unlock();
    await a.close();
    await b.close();
  });

  it("FsFile cannot be constructed by user code", () => {
    expect(() => new (FsFile as any)(Symbol("x"))).toThrow(new TypeError("Can not construct FsFile, use 'sandbox.fs.open()' or 'sandbox.fs.create()'."));
  });
});

describe("open files belong to the connection that opened them", () => {
  it("another connection of the same owner cannot read, write, seek or close a handle, even guessing its number", async () => {
    const dir = await testDir("owner");
    await sb.fs.writeTextFile(`${dir}/secret`, "mine");
    const file = await sb.fs.open(`${dir}/secret`, { read: true, write: true });
    const raw = await RawClient.open(daemon.url, daemon.token);
    try {
      for (let handle = 1; handle <= 64; handle++) {
        for (const [method, extra] of [
          ["fs.fileRead", { length: 4, stream: 1 }],
          ["fs.fileSeek", { offset: 0, whence: 0 }],
          ["fs.fileTruncate", {}],
          ["fs.fileClose", {}],
        ] as const) {
          const reply = await raw.call(method, { sandbox: sb.id, handle, ...extra });
          expect(reply.error?.data?.errno, `${method} on handle ${handle}`).toBe("EBADF");
        }
      }
    } finally {
      raw.ws.close();
    }
    // Still open and untouched for its owner.
    const buf = new Uint8Array(8);
    expect(await file.read(buf)).toBe(4);
    expect(text(buf.subarray(0, 4))).toBe("mine");
    await file.close();
  });

  it("a sandbox holds at most 256 open files, and a connection's files close when it goes", async () => {
    const dir = await testDir("limit");
    await sb.fs.writeTextFile(`${dir}/f`, "x");
    const other = await Sandbox.connect(sb.id, daemon.opts);
    const held: FsFile[] = [];
    for (let i = 0; i < 256; i++) held.push(await other.fs.open(`${dir}/f`));
    const err = await sb.fs.open(`${dir}/f`).then(
      () => null,
      (e: RpcError) => e,
    );
    expect(err?.message).toMatch(/EMFILE: this sandbox already has 256 open files/);
    await other.close(); // its connection goes, and its 256 files with it
    // ... once the daemon has handled the close, which may be just after the client's close resolved.
    const opened: FsFile[] = [];
    const deadline = Date.now() + 5000;
    for (;;) {
      const first = await sb.fs.open(`${dir}/f`).catch((e: RpcError) => e);
      if (!(first instanceof Error)) {
        opened.push(first);
        break;
      }
      if (!/EMFILE/.test(first.message) || Date.now() > deadline) throw first;
      await new Promise((r) => setTimeout(r, 20));
    }
    for (let i = 1; i < 256; i++) opened.push(await sb.fs.open(`${dir}/f`));
    await Promise.all(opened.map((f) => f.close()));
    // Closing after the connection has gone is no error.
    await held[0]!.close();
  });
});

describe("calls on paths", () => {
  it("link, truncate, makeTempFile, utime, chown and umask", async () => {
    const dir = await testDir("calls");
    await sb.fs.writeTextFile(`${dir}/a`, "0123456789");
    await sb.fs.link(`${dir}/a`, `${dir}/hard`);
    expect((await sb.fs.stat(`${dir}/a`)).nlink).toBe(2);
    expect((await sb.fs.stat(`${dir}/a`)).ino).toBe((await sb.fs.stat(`${dir}/hard`)).ino);
    expect(await errnoOf(sb.fs.link(`${dir}/a`, `${dir}/hard`))).toBe("EEXIST");

    await sb.fs.truncate(`${dir}/a`, 4);
    expect(await sb.fs.readTextFile(`${dir}/hard`)).toBe("0123");
    await sb.fs.truncate(`${dir}/a`);
    expect((await sb.fs.stat(`${dir}/a`)).size).toBe(0);

    const tmp = await sb.fs.makeTempFile({ prefix: "p-", suffix: ".txt" });
    expect(tmp).toMatch(/^\/tmp\/p-[0-9a-f]{12}\.txt$/);
    expect(await sb.fs.stat(tmp)).toMatchObject({ isFile: true, size: 0 });
    expect((await sb.fs.stat(tmp)).mode & 0o777).toBe(0o600);
    expect(await sb.fs.makeTempFile({ dir })).toMatch(new RegExp(`^${dir}/[0-9a-f]{12}$`));

    await sb.fs.utime(`${dir}/a`, 1_000_000, new Date(2_000_000_500));
    const st = await sb.fs.stat(`${dir}/a`);
    expect(st.atime.getTime()).toBe(1_000_000_000);
    expect(st.mtime.getTime()).toBe(2_000_000_500);

    await sb.fs.chown(`${dir}/a`, 1000, null);
    // Root is not the sandbox user's to give (unmapped in its user namespace: EINVAL; mapped: EPERM).
    expect(["EINVAL", "EPERM"]).toContain(await errnoOf(sb.fs.chown(`${dir}/a`, 0, 0)));

    const before = await sb.fs.umask(0o077);
    expect(before).toBe(0o022);
    expect(await sb.fs.umask()).toBe(0o077);
    const f = await sb.fs.open(`${dir}/masked`, { write: true, create: true });
    await f.close();
    expect((await sb.fs.stat(`${dir}/masked`)).mode & 0o777).toBe(0o600);
    expect((await sb.sh`umask`.text()).trim()).toBe("0077"); // later processes start from it too
    await sb.fs.umask(before);
  });

  it("takes file: URLs as paths", async () => {
    const dir = await testDir("url");
    const url = new URL(`file://${dir}/u.txt`);
    await sb.fs.writeTextFile(url, "by url");
    expect(await sb.fs.readTextFile(url)).toBe("by url");
    expect((await sb.fs.stat(url)).size).toBe(6);
    await expect(sb.fs.readTextFile(new URL("https://example.com/x"))).rejects.toThrow(TypeError);
  });

  it("writeTextFile takes a stream of strings", async () => {
    const dir = await testDir("textstream");
    const parts = ["one ", "two ", "thr", "ee ✓"];
    const stream = new ReadableStream<string>({
      pull(c) {
        const next = parts.shift();
        if (next === undefined) c.close();
        else c.enqueue(next);
      },
    });
    await sb.fs.writeTextFile(`${dir}/s.txt`, stream);
    expect(await sb.fs.readTextFile(`${dir}/s.txt`)).toBe("one two three ✓");
  });

  it("{ signal } stops a read or a write and rejects with the signal's reason", async () => {
    const dir = await testDir("signal");
    await expect(sb.fs.readFile(`${dir}/x`, { signal: AbortSignal.abort(new Error("stop now")) })).rejects.toThrow("stop now");
    await sb.fs.writeTextFile(`${dir}/keep`, "old");
    const controller = new AbortController();
    const endless = new ReadableStream<Uint8Array>({
      pull: async (c) => {
        await new Promise((r) => setTimeout(r, 5));
        c.enqueue(new Uint8Array(4096));
      },
    });
    const writing = sb.fs.writeFile(`${dir}/keep`, endless, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("enough")), 200);
    await expect(writing).rejects.toThrow("enough");
    expect(await sb.fs.readTextFile(`${dir}/keep`)).toBe("old");
  });
});

describe("upload and download like cp -r", () => {
  it("a directory lands inside an existing target directory under its own name, or becomes a missing target", async () => {
    const local = join(hostTmp, "proj");
    await fsp.mkdir(join(local, "src"), { recursive: true });
    await fsp.writeFile(join(local, "src/main.ts"), "main");
    const dir = await testDir("cp");
    await sb.fs.upload(local, dir);
    expect(await sb.fs.readTextFile(`${dir}/proj/src/main.ts`)).toBe("main");
    await sb.fs.upload(local, `${dir}/fresh`);
    expect(await sb.fs.readTextFile(`${dir}/fresh/src/main.ts`)).toBe("main");
    // A file into a directory keeps its name.
    await sb.fs.upload(join(local, "src/main.ts"), dir);
    expect(await sb.fs.readTextFile(`${dir}/main.ts`)).toBe("main");

    const into = join(hostTmp, "into");
    await fsp.mkdir(into);
    await sb.fs.download(pathToFileURL(`${dir}/proj`), into);
    expect(await fsp.readFile(join(into, "proj/src/main.ts"), "utf8")).toBe("main");
    await sb.fs.download(`${dir}/main.ts`, into);
    expect(await fsp.readFile(join(into, "main.ts"), "utf8")).toBe("main");
    await sb.fs.download(`${dir}/proj`, join(hostTmp, "new-name"));
    expect(await fsp.readFile(join(hostTmp, "new-name/src/main.ts"), "utf8")).toBe("main");
  });
});

describe("walk and expandGlob", () => {
  async function tree(): Promise<string> {
    const dir = await testDir("walk");
    await sb.sh`mkdir -p ${dir}/a/b ${dir}/real && touch ${dir}/a/x.ts ${dir}/a/b/y.ts ${dir}/a/b/z.js ${dir}/top.md ${dir}/real/r.ts && ln -s real ${dir}/ln`;
    return dir;
  }

  it("walk honours exts, followSymlinks and canonicalize", async () => {
    const dir = await tree();
    const ts = await list(sb.fs.walk(dir, { exts: ["ts"] }));
    expect(ts.map((e) => e.path).sort()).toEqual([`${dir}/a/b/y.ts`, `${dir}/a/x.ts`, `${dir}/real/r.ts`]);
    const followed = await list(sb.fs.walk(dir, { followSymlinks: true, exts: [".ts"] }));
    // Through the link, canonicalized to the real path (so the same file twice).
    expect(followed.map((e) => e.path).filter((p) => p.endsWith("r.ts"))).toEqual([`${dir}/real/r.ts`, `${dir}/real/r.ts`]);
    const asLinked = await list(sb.fs.walk(dir, { followSymlinks: true, canonicalize: false, exts: [".ts"] }));
    expect(asLinked.map((e) => e.path).filter((p) => p.endsWith("r.ts")).sort()).toEqual([`${dir}/ln/r.ts`, `${dir}/real/r.ts`]);
    const noFollow = await list(sb.fs.walk(dir, { includeDirs: false }));
    expect(noFollow.find((e) => e.path === `${dir}/ln`)).toMatchObject({ isSymlink: true });
  });

  it("expandGlob finds entries by glob, sorted and absolute", async () => {
    const dir = await tree();
    const all = await list(sb.fs.expandGlob(`${dir}/**/*.ts`));
    expect(all.map((e) => e.path)).toEqual([`${dir}/a/b/y.ts`, `${dir}/a/x.ts`, `${dir}/real/r.ts`]);
    const rel = await list(sb.fs.expandGlob("a/*", { root: dir }));
    expect(rel.map((e) => e.path)).toEqual([`${dir}/a/b`, `${dir}/a/x.ts`]);
    const noDirs = await list(sb.fs.expandGlob("a/*", { root: dir, includeDirs: false }));
    expect(noDirs.map((e) => e.path)).toEqual([`${dir}/a/x.ts`]);
    const excl = await list(sb.fs.expandGlob(`${dir}/**/*.{ts,js}`, { exclude: ["a/b"], root: dir }));
    expect(excl.map((e) => e.path)).toEqual([`${dir}/a/x.ts`, `${dir}/real/r.ts`]);
    expect(await list(sb.fs.expandGlob(`${dir}/nothing/*`))).toEqual([]);
  });
});
