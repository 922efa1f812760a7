import { createHash, randomBytes } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RpcError, Sandbox } from "@sbx/client";
import { useSandbox } from "../helpers/fixtures.js";

// A test that crashes the sandbox must not take every later test down with it: each test
// gets a live sandbox (the crash itself is reported by the test that caused it).
const { daemon, sb } = useSandbox({ replaceDead: true });
let hostTmp: string;
const encoder = new TextEncoder();
const MiB = 1 << 20;

/** The rejection of `p`; fails the test if `p` resolves. */
async function failure(p: Promise<unknown>): Promise<RpcError> {
  const outcome = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (outcome.ok) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.v)}`);
  return outcome.e as RpcError;
}

async function expectErrno(p: Promise<unknown>, errno: string | string[]): Promise<RpcError> {
  const err = await failure(p);
  expect(err).toBeInstanceOf(RpcError);
  if (Array.isArray(errno)) expect(errno).toContain(err.errno);
  else expect(err.errno).toBe(errno);
  return err;
}

async function collectList<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** A fresh directory under /home/sandbox for one test, so tests do not depend on each other. */
async function testDir(name: string): Promise<string> {
  const dir = `/home/sandbox/t-${name}-${randomBytes(3).toString("hex")}`;
  await sb.fs.mkdir(dir);
  return dir;
}

function pattern(size: number, seed = 0): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed + (i >> 8)) & 0xff;
  return out;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: MiB })) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Type, permission bits and contents (or link target) of every entry below `root`, by relative path. */
async function snapshotHostTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function visit(path: string) {
    const st = await fsp.lstat(path);
    const rel = relative(root, path) || ".";
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[rel] = `symlink -> ${await fsp.readlink(path)}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${mode}`;
      for (const child of await fsp.readdir(path)) await visit(join(path, child));
    } else if (st.isFile()) out[rel] = `file ${mode} ${createHash("sha256").update(await fsp.readFile(path)).digest("hex")}`;
    else out[rel] = "other";
  }
  await visit(root);
  return out;
}

beforeAll(async () => {
  hostTmp = await fsp.mkdtemp(join(tmpdir(), "sbx-fs-test-"));
});

afterAll(async () => {
  if (hostTmp) await fsp.rm(hostTmp, { recursive: true, force: true });
});

describe("reading and writing files", () => {
  it("round-trips text, and readFile gives its UTF-8 bytes", async () => {
    const dir = await testDir("text");
    const text = "héllo wörld ✓ — 🦀\nsecond line\n";
    await sb.fs.writeTextFile(`${dir}/hello.txt`, text);
    expect(await sb.fs.readTextFile(`${dir}/hello.txt`)).toBe(text);
    expect(await sb.fs.readFile(`${dir}/hello.txt`)).toEqual(encoder.encode(text));
    expect((await sb.fs.stat(`${dir}/hello.txt`)).size).toBe(encoder.encode(text).byteLength);
    // The sandbox's own tools see the same bytes.
    expect(await sb.sh`sha256sum ${`${dir}/hello.txt`} | cut -d' ' -f1`.text()).toBe(`${createHash("sha256").update(text).digest("hex")}\n`);
  });

  it("round-trips binary data with every byte value", async () => {
    const dir = await testDir("binary");
    const bytes = new Uint8Array(256 * 5 + 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    expect(new Set(bytes).size).toBe(256);
    await sb.fs.writeFile(`${dir}/all.bin`, bytes);
    const back = await sb.fs.readFile(`${dir}/all.bin`);
    expect(back).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(back).equals(Buffer.from(bytes))).toBe(true);
    expect(await sb.sh`sha256sum ${`${dir}/all.bin`} | cut -d' ' -f1`.text()).toBe(`${createHash("sha256").update(bytes).digest("hex")}\n`);
    expect(await sb.sh`head -c 8 ${`${dir}/all.bin`} | od -An -tu1 | xargs`.text()).toBe(`${Array.from(bytes.subarray(0, 8)).join(" ")}\n`);
  });

  it("writes and reads an empty file", async () => {
    const dir = await testDir("empty");
    await sb.fs.writeFile(`${dir}/empty.bin`, new Uint8Array(0));
    await sb.fs.writeTextFile(`${dir}/empty.txt`, "");
    expect((await sb.fs.stat(`${dir}/empty.bin`)).size).toBe(0);
    expect((await sb.fs.stat(`${dir}/empty.txt`)).isFile).toBe(true);
    expect((await sb.fs.readFile(`${dir}/empty.bin`)).byteLength).toBe(0);
    expect(await sb.fs.readTextFile(`${dir}/empty.txt`)).toBe("");
  });

  it("writes from a ReadableStream and an async iterable, larger than the flow-control window", async () => {
    const dir = await testDir("stream");
    const size = 3 * MiB + 17;
    const data = pattern(size, 5);
    let offset = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= size) return controller.close();
        const n = Math.min(100_003, size - offset); // chunk sizes unrelated to the frame size
        controller.enqueue(data.slice(offset, offset + n));
        offset += n;
      },
    });
    await sb.fs.writeFile(`${dir}/from-stream.bin`, stream);
    expect((await sb.fs.stat(`${dir}/from-stream.bin`)).size).toBe(size);
    expect(await sb.sh`sha256sum ${`${dir}/from-stream.bin`} | cut -d' ' -f1`.text()).toBe(`${createHash("sha256").update(data).digest("hex")}\n`);
    expect(Buffer.from(await sb.fs.readFile(`${dir}/from-stream.bin`)).equals(Buffer.from(data))).toBe(true);

    async function* gen() {
      yield encoder.encode("one,");
      yield new Uint8Array(0);
      yield encoder.encode("two,");
      yield encoder.encode("three");
    }
    await sb.fs.writeFile(`${dir}/from-iter.txt`, gen());
    expect(await sb.fs.readTextFile(`${dir}/from-iter.txt`)).toBe("one,two,three");
  });

  it("readFileStream streams a file in bounded chunks", async () => {
    const dir = await testDir("readstream");
    const size = 2 * MiB + 5;
    await sb.sh`head -c ${String(size)} /dev/urandom > ${`${dir}/r.bin`}`;
    const expected = (await sb.sh`sha256sum ${`${dir}/r.bin`} | cut -d' ' -f1`.text()).trimEnd();
    const stream = await sb.fs.readFileStream(`${dir}/r.bin`);
    expect(stream).toBeInstanceOf(ReadableStream);
    const h = createHash("sha256");
    let total = 0;
    let chunks = 0;
    let biggest = 0;
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
      h.update(chunk);
      total += chunk.byteLength;
      chunks++;
      biggest = Math.max(biggest, chunk.byteLength);
    }
    expect(total).toBe(size);
    expect(h.digest("hex")).toBe(expected);
    expect(chunks).toBeGreaterThan(1);
    expect(biggest).toBeLessThanOrEqual(256 * 1024);
  });

  it("honours append, create, createNew and mode; overwriting truncates", async () => {
    const dir = await testDir("opts");
    const f = `${dir}/f.txt`;
    await sb.fs.writeTextFile(f, "a long first version\n");
    await sb.fs.writeTextFile(f, "short");
    expect(await sb.fs.readTextFile(f)).toBe("short");
    await sb.fs.writeTextFile(f, "+more", { append: true });
    expect(await sb.fs.readTextFile(f)).toBe("short+more");

    const exists = await expectErrno(sb.fs.writeTextFile(f, "clobber", { createNew: true }), "EEXIST");
    expect(exists.message).toMatch(/EEXIST/);
    expect(await sb.fs.readTextFile(f)).toBe("short+more");
    await sb.fs.writeTextFile(`${dir}/new.txt`, "fresh", { createNew: true });
    expect(await sb.fs.readTextFile(`${dir}/new.txt`)).toBe("fresh");

    await expectErrno(sb.fs.writeTextFile(`${dir}/missing.txt`, "x", { create: false }), "ENOENT");
    await expectErrno(sb.fs.stat(`${dir}/missing.txt`), "ENOENT");

    await sb.fs.writeTextFile(`${dir}/secret.txt`, "s", { mode: 0o600 });
    expect((await sb.fs.stat(`${dir}/secret.txt`)).mode & 0o7777).toBe(0o600);
    await sb.fs.writeTextFile(`${dir}/tool.sh`, "#!/bin/sh\necho tool-ran\n", { mode: 0o755 });
    expect((await sb.fs.stat(`${dir}/tool.sh`)).mode & 0o7777).toBe(0o755);
    expect(await sb.sh`${`${dir}/tool.sh`}`.text()).toBe("tool-ran\n");
  });

  it("reports ENOENT and EISDIR as RpcError with errno and path", async () => {
    const dir = await testDir("errors");
    const missing = await expectErrno(sb.fs.readFile(`${dir}/nope.txt`), "ENOENT");
    expect(missing.message).toMatch(/no such file or directory/);
    expect((missing.data as { path?: string }).path).toBe(`${dir}/nope.txt`);
    await expectErrno(sb.fs.readTextFile(dir), "EISDIR");
    await expectErrno(sb.fs.writeTextFile(dir, "x"), "EISDIR");
    await expectErrno(sb.fs.writeTextFile(`${dir}/no/such/dir/f.txt`, "x"), "ENOENT");
    await expectErrno(sb.fs.readFileStream(`${dir}/nope.txt`), "ENOENT");
    // The connection and the sandbox are fine afterwards.
    await sb.fs.writeTextFile(`${dir}/ok.txt`, "ok");
    expect(await sb.fs.readTextFile(`${dir}/ok.txt`)).toBe("ok");
  });
});

describe("metadata", () => {
  it("stat and lstat report Deno's FileInfo: type, size, Dates, raw st_mode, owner, inode, links, blocks", async () => {
    const dir = await testDir("stat");
    const before = Date.now();
    await sb.fs.writeTextFile(`${dir}/f.txt`, "12345");
    const after = Date.now();
    const st = await sb.fs.stat(`${dir}/f.txt`);
    expect(st).toMatchObject({ isFile: true, isDirectory: false, isSymlink: false, isBlockDevice: false, isCharDevice: false, isFifo: false, isSocket: false });
    expect(st).toMatchObject({ size: 5, mode: 0o100644, uid: 1000, gid: 1000, nlink: 1, rdev: 0 });
    expect(Object.keys(st).sort()).toEqual(
      ["atime", "birthtime", "blksize", "blocks", "ctime", "dev", "gid", "ino", "isBlockDevice", "isCharDevice", "isDirectory", "isFifo", "isFile", "isSocket", "isSymlink", "mode", "mtime", "nlink", "rdev", "size", "uid"],
    );
    const [ino, dev, blocks, blksize] = (await sb.sh`stat -c '%i %d %b %o' ${`${dir}/f.txt`}`.text()).trim().split(" ").map(Number);
    expect([st.ino, st.dev, st.blocks, st.blksize]).toEqual([ino, dev, blocks, blksize]);
    expect(st.mtime).toBeInstanceOf(Date);
    expect(st.atime).toBeInstanceOf(Date);
    expect(st.ctime).toBeInstanceOf(Date);
    expect(st.mtime!.getTime()).toBeGreaterThanOrEqual(before - 2000);
    expect(st.mtime!.getTime()).toBeLessThanOrEqual(after + 2000);
    expect(st.birthtime === null || st.birthtime instanceof Date).toBe(true);

    const d = await sb.fs.stat(dir);
    expect(d).toMatchObject({ isFile: false, isDirectory: true, isSymlink: false, uid: 1000 });
    expect(d.mode & 0o170000).toBe(0o040000);
    expect(await sb.fs.stat("/dev/null")).toMatchObject({ isCharDevice: true, isFile: false, mode: 0o20666 });

    await sb.fs.symlink("f.txt", `${dir}/link`);
    expect(await sb.fs.stat(`${dir}/link`)).toMatchObject({ isFile: true, isSymlink: false, size: 5 });
    const l = await sb.fs.lstat(`${dir}/link`);
    expect(l).toMatchObject({ isFile: false, isDirectory: false, isSymlink: true, size: "f.txt".length });
    expect(l.mtime).toBeInstanceOf(Date);

    await sb.fs.symlink("nowhere", `${dir}/dangling`);
    await expectErrno(sb.fs.stat(`${dir}/dangling`), "ENOENT");
    expect((await sb.fs.lstat(`${dir}/dangling`)).isSymlink).toBe(true);
  });

  it("readDir lists every entry with its type", async () => {
    const dir = await testDir("readdir");
    await sb.fs.writeTextFile(`${dir}/a.txt`, "a");
    await sb.fs.writeTextFile(`${dir}/b.txt`, "b");
    await sb.fs.mkdir(`${dir}/sub`);
    await sb.fs.symlink("a.txt", `${dir}/ln`);
    const entries = (await collectList(sb.fs.readDir(dir))).sort((x, y) => x.name.localeCompare(y.name));
    expect(entries).toEqual([
      { name: "a.txt", isFile: true, isDirectory: false, isSymlink: false },
      { name: "b.txt", isFile: true, isDirectory: false, isSymlink: false },
      { name: "ln", isFile: false, isDirectory: false, isSymlink: true },
      { name: "sub", isFile: false, isDirectory: true, isSymlink: false },
    ]);
    expect(await collectList(sb.fs.readDir(`${dir}/sub`))).toEqual([]);
    await expectErrno(collectList(sb.fs.readDir(`${dir}/missing`)), "ENOENT");
    await expectErrno(collectList(sb.fs.readDir(`${dir}/a.txt`)), "ENOTDIR");
  });

  it("chmod sets permission bits", async () => {
    const dir = await testDir("chmod");
    await sb.fs.writeTextFile(`${dir}/f`, "x");
    await sb.fs.chmod(`${dir}/f`, 0o600);
    expect((await sb.fs.stat(`${dir}/f`)).mode & 0o7777).toBe(0o600);
    await sb.fs.chmod(`${dir}/f`, 0o751);
    expect((await sb.fs.stat(`${dir}/f`)).mode & 0o7777).toBe(0o751);
    expect(await sb.sh`stat -c %a ${`${dir}/f`}`.text()).toBe("751\n");
    await expectErrno(sb.fs.chmod(`${dir}/missing`, 0o600), "ENOENT");
  });
});

describe("directories and names", () => {
  it("mkdir, recursively or not", async () => {
    const dir = await testDir("mkdir");
    await expectErrno(sb.fs.mkdir(`${dir}/a/b/c`), "ENOENT");
    await sb.fs.mkdir(`${dir}/a/b/c`, { recursive: true });
    expect((await sb.fs.stat(`${dir}/a/b/c`)).isDirectory).toBe(true);
    await expectErrno(sb.fs.mkdir(`${dir}/a`), "EEXIST");
    await sb.fs.mkdir(`${dir}/a/b`, { recursive: true }); // existing is fine when recursive
    await sb.fs.mkdir(`${dir}/m`, { mode: 0o700 });
    expect((await sb.fs.stat(`${dir}/m`)).mode & 0o7777).toBe(0o700);
    await sb.fs.writeTextFile(`${dir}/file`, "x");
    await expectErrno(sb.fs.mkdir(`${dir}/file/sub`, { recursive: true }), ["ENOTDIR", "EEXIST"]);
  });

  it("remove deletes files, symlinks and empty dirs; a non-empty dir only with recursive", async () => {
    const dir = await testDir("remove");
    await sb.fs.writeTextFile(`${dir}/f.txt`, "x");
    await sb.fs.remove(`${dir}/f.txt`);
    await expectErrno(sb.fs.stat(`${dir}/f.txt`), "ENOENT");

    await sb.fs.mkdir(`${dir}/empty`);
    await sb.fs.remove(`${dir}/empty`);
    await expectErrno(sb.fs.stat(`${dir}/empty`), "ENOENT");

    await sb.fs.mkdir(`${dir}/full/deeper`, { recursive: true });
    await sb.fs.writeTextFile(`${dir}/full/deeper/x.txt`, "x");
    await expectErrno(sb.fs.remove(`${dir}/full`), "ENOTEMPTY");
    expect(await sb.fs.readTextFile(`${dir}/full/deeper/x.txt`)).toBe("x");
    await sb.fs.remove(`${dir}/full`, { recursive: true });
    await expectErrno(sb.fs.stat(`${dir}/full`), "ENOENT");

    // Removing a symlink to a directory removes the link, never the target's contents.
    await sb.fs.mkdir(`${dir}/target`);
    await sb.fs.writeTextFile(`${dir}/target/keep.txt`, "keep");
    await sb.fs.symlink(`${dir}/target`, `${dir}/to-target`);
    await sb.fs.remove(`${dir}/to-target`, { recursive: true });
    await expectErrno(sb.fs.lstat(`${dir}/to-target`), "ENOENT");
    expect(await sb.fs.readTextFile(`${dir}/target/keep.txt`)).toBe("keep");

    await expectErrno(sb.fs.remove(`${dir}/never-was`), "ENOENT");
  });

  it("rename moves files and directories", async () => {
    const dir = await testDir("rename");
    await sb.fs.writeTextFile(`${dir}/a.txt`, "A");
    await sb.fs.rename(`${dir}/a.txt`, `${dir}/b.txt`);
    await expectErrno(sb.fs.stat(`${dir}/a.txt`), "ENOENT");
    expect(await sb.fs.readTextFile(`${dir}/b.txt`)).toBe("A");
    await sb.fs.mkdir(`${dir}/d1/inner`, { recursive: true });
    await sb.fs.rename(`${dir}/d1`, `${dir}/d2`);
    expect((await sb.fs.stat(`${dir}/d2/inner`)).isDirectory).toBe(true);
    await expectErrno(sb.fs.rename(`${dir}/missing`, `${dir}/x`), "ENOENT");
  });

  it("copyFile copies contents and leaves the source", async () => {
    const dir = await testDir("copy");
    const data = pattern(300_000, 9);
    await sb.fs.writeFile(`${dir}/src.bin`, data);
    await sb.fs.copyFile(`${dir}/src.bin`, `${dir}/dst.bin`);
    expect(Buffer.from(await sb.fs.readFile(`${dir}/dst.bin`)).equals(Buffer.from(data))).toBe(true);
    expect((await sb.fs.stat(`${dir}/src.bin`)).size).toBe(data.byteLength);
    await expectErrno(sb.fs.copyFile(`${dir}/missing`, `${dir}/x`), "ENOENT");
  });

  it("symlink, readLink and realPath", async () => {
    const dir = await testDir("links");
    await sb.fs.mkdir(`${dir}/real/sub`, { recursive: true });
    await sb.fs.writeTextFile(`${dir}/real/sub/file.txt`, "through the link");
    await sb.fs.symlink("real/sub", `${dir}/rel-link`);
    await sb.fs.symlink(`${dir}/real`, `${dir}/abs-link`);
    expect(await sb.fs.readLink(`${dir}/rel-link`)).toBe("real/sub");
    expect(await sb.fs.readLink(`${dir}/abs-link`)).toBe(`${dir}/real`);
    expect(await sb.fs.realPath(`${dir}/rel-link/file.txt`)).toBe(`${dir}/real/sub/file.txt`);
    expect(await sb.fs.realPath(`${dir}/abs-link/sub/../sub`)).toBe(`${dir}/real/sub`);
    expect(await sb.fs.readTextFile(`${dir}/rel-link/file.txt`)).toBe("through the link");
    await expectErrno(sb.fs.symlink("anything", `${dir}/rel-link`), "EEXIST");
    await expectErrno(sb.fs.readLink(`${dir}/real`), "EINVAL");
    await expectErrno(sb.fs.realPath(`${dir}/missing`), "ENOENT");
  });

  it("makeTempDir makes unique private directories with prefix and suffix", async () => {
    const a = await sb.fs.makeTempDir();
    const b = await sb.fs.makeTempDir();
    expect(a).toMatch(/^\/tmp\/[^/]+$/);
    expect(a).not.toBe(b);
    const st = await sb.fs.stat(a);
    expect(st.isDirectory).toBe(true);
    expect(st.mode).toBe(0o40700);
    expect(st.uid).toBe(1000);
    const named = await sb.fs.makeTempDir({ prefix: "pre-", suffix: ".d" });
    expect(named).toMatch(/^\/tmp\/pre-[^/]+\.d$/);
    expect(named.length).toBeGreaterThan("/tmp/pre-.d".length + 5);
    const base = await testDir("tmpbase");
    const inside = await sb.fs.makeTempDir({ dir: base, prefix: "x" });
    expect(inside.startsWith(`${base}/x`)).toBe(true);
    expect((await sb.fs.stat(inside)).isDirectory).toBe(true);
    const bad = await failure(sb.fs.makeTempDir({ prefix: "../escape" }));
    expect(bad).toBeInstanceOf(RpcError);
    expect(bad.message).toMatch(/prefix/);
  });

  it("walk yields the root then every entry, with filters", async () => {
    const dir = await testDir("walk");
    await sb.fs.mkdir(`${dir}/a/b`, { recursive: true });
    await sb.fs.writeTextFile(`${dir}/top.txt`, "t");
    await sb.fs.writeTextFile(`${dir}/a/mid.txt`, "m");
    await sb.fs.writeTextFile(`${dir}/a/b/deep.log`, "d");
    await sb.fs.symlink("top.txt", `${dir}/ln`);
    const all = await collectList(sb.fs.walk(dir));
    expect(all[0]).toMatchObject({ path: dir, isDirectory: true });
    expect(all.map((e) => e.path).sort()).toEqual(
      [dir, `${dir}/a`, `${dir}/a/b`, `${dir}/a/b/deep.log`, `${dir}/a/mid.txt`, `${dir}/ln`, `${dir}/top.txt`].sort(),
    );
    expect(all.find((e) => e.path === `${dir}/ln`)).toMatchObject({ name: "ln", isSymlink: true, isFile: false });
    expect(all.find((e) => e.path === `${dir}/a/b/deep.log`)).toMatchObject({ name: "deep.log", isFile: true });
    // A parent always comes before its children.
    const order = all.map((e) => e.path);
    expect(order.indexOf(`${dir}/a`)).toBeLessThan(order.indexOf(`${dir}/a/b/deep.log`));

    const filesOnly = await collectList(sb.fs.walk(dir, { includeDirs: false, includeSymlinks: false }));
    expect(filesOnly.map((e) => e.path).sort()).toEqual([`${dir}/a/b/deep.log`, `${dir}/a/mid.txt`, `${dir}/top.txt`]);
    const shallow = await collectList(sb.fs.walk(dir, { maxDepth: 1 }));
    expect(shallow.map((e) => e.path).sort()).toEqual([dir, `${dir}/a`, `${dir}/ln`, `${dir}/top.txt`].sort());
    const logs = await collectList(sb.fs.walk(dir, { match: [/\.log$/] }));
    expect(logs.map((e) => e.path)).toEqual([`${dir}/a/b/deep.log`]);
    const skipped = await collectList(sb.fs.walk(dir, { skip: [/\/a$/] }));
    expect(skipped.map((e) => e.path).sort()).toEqual([dir, `${dir}/ln`, `${dir}/top.txt`].sort());
    // From a relative root (resolved against the home) the paths are relative, as Deno's walk gives them.
    const home = "/home/sandbox/";
    const rel = await collectList(sb.fs.walk(dir.slice(home.length), { includeDirs: false }));
    expect(rel.map((e) => e.path).sort()).toEqual(filesOnly.map((e) => e.path).concat(`${dir}/ln`).map((p) => p.slice(home.length)).sort());
  });
});

describe("paths resolve inside the sandbox", () => {
  it("/home/user, the home's former name, is the same directory", async () => {
    const dir = await testDir("alias");
    const name = dir.slice("/home/sandbox/".length);
    await sb.fs.writeTextFile(`/home/user/${name}/via-alias.txt`, "one home");
    expect(await sb.fs.readTextFile(`${name}/via-alias.txt`)).toBe("one home");
    expect((await sb.fs.stat("/home/user")).isDirectory).toBe(true);
    const [home, alias] = (await sb.sh`stat -c %d:%i /home/sandbox /home/user`.text()).split("\n");
    expect(alias).toBe(home);
    expect(await sb.sh`cd /home/user/${name} && cat via-alias.txt`.text()).toBe("one home");
  });

  it("relative paths resolve against /home/sandbox", async () => {
    const dir = await testDir("relative");
    const name = dir.slice("/home/sandbox/".length);
    await sb.fs.writeTextFile(`${name}/rel.txt`, "relative");
    expect(await sb.fs.readTextFile(`${dir}/rel.txt`)).toBe("relative");
    expect(await sb.sh`cat /home/sandbox/${name}/rel.txt`.text()).toBe("relative");
    expect(await sb.fs.realPath(".")).toBe("/home/sandbox");
    expect(await sb.fs.realPath(name)).toBe(dir);
    const listed = await collectList(sb.fs.readDir("."));
    expect(listed.map((e) => e.name)).toContain(name);
  });

  it("'..' cannot climb out: writing ../../etc/x fails read-only, on neither side", async () => {
    expect(existsSync("/etc/x")).toBe(false);
    const err = await expectErrno(sb.fs.writeTextFile("../../etc/x", "pwned"), ["EROFS", "EACCES"]);
    expect(err.message).toMatch(/\/etc\/x/);
    await expectErrno(sb.fs.stat("/etc/x"), "ENOENT");
    expect(existsSync("/etc/x")).toBe(false);
    await expectErrno(sb.fs.writeTextFile("../../../../../../../../x", "pwned"), ["EROFS", "EACCES"]);
    expect(existsSync("/x")).toBe(false);
    expect(await sb.fs.realPath("../../../../..")).toBe("/");
    await expectErrno(sb.fs.mkdir("/usr/evil"), ["EROFS", "EACCES"]);
    await expectErrno(sb.fs.remove("/usr/bin/env"), ["EROFS", "EACCES"]);
  });

  it("absolute paths name the sandbox's files: /etc/passwd is the sandbox's, with user 1000", async () => {
    const passwd = await sb.fs.readTextFile("/etc/passwd");
    expect(passwd).toMatch(/^user:x:1000:1000:[^:]*:\/home\/sandbox:/m);
    expect(passwd).not.toBe(readFileSync("/etc/passwd", "utf8"));
    expect(passwd.trim().split("\n").map((l) => l.split(":")[0])).toEqual(["root", "user", "nobody"]);
    expect(await sb.sh`cat /etc/passwd`.text()).toBe(passwd);
    // A file written to /tmp in the sandbox does not appear in the host's /tmp.
    const name = `sbx-fs-probe-${randomBytes(6).toString("hex")}`;
    await sb.fs.writeTextFile(`/tmp/${name}`, "inside");
    expect(await sb.fs.readTextFile(`/tmp/${name}`)).toBe("inside");
    expect(existsSync(`/tmp/${name}`)).toBe(false);
  });

  it("symlinks resolve inside: a link to /root/... finds no host file", async () => {
    const secretName = `sbx-fs-secret-${randomBytes(6).toString("hex")}`;
    const hostSecret = `/root/${secretName}`;
    await fsp.writeFile(hostSecret, "host secret");
    try {
      const dir = await testDir("rootlink");
      await sb.fs.symlink(hostSecret, `${dir}/to-root`);
      expect(await sb.fs.readLink(`${dir}/to-root`)).toBe(hostSecret);
      await expectErrno(sb.fs.readTextFile(`${dir}/to-root`), "ENOENT");
      await expectErrno(sb.fs.stat(`${dir}/to-root`), "ENOENT");
      await expectErrno(sb.fs.realPath(`${dir}/to-root`), "ENOENT");
      await expectErrno(sb.fs.copyFile(`${dir}/to-root`, `${dir}/copied`), "ENOENT");
      // Writing through it cannot create anything on the host either.
      await expectErrno(sb.fs.writeTextFile(`${dir}/to-root`, "overwrite"), ["ENOENT", "EROFS", "EACCES"]);
      expect(readFileSync(hostSecret, "utf8")).toBe("host secret");
      await expectErrno(sb.fs.stat("/root"), "ENOENT");

      // A relative link climbing with '..' lands on the sandbox's root, which is read-only.
      await sb.fs.symlink("../../../../../..", `${dir}/up`);
      expect(await sb.fs.realPath(`${dir}/up`)).toBe("/");
      await expectErrno(sb.fs.writeTextFile(`${dir}/up/etc/sbx-pwned`, "x"), ["EROFS", "EACCES"]);
      expect(existsSync("/etc/sbx-pwned")).toBe(false);
      await expectErrno(sb.fs.readTextFile(`${dir}/up/root/${secretName}`), "ENOENT");
    } finally {
      await fsp.rm(hostSecret, { force: true });
    }
  });
});

describe("upload and download", () => {
  async function makeHostTree(root: string) {
    await fsp.mkdir(join(root, "bin"), { recursive: true });
    await fsp.mkdir(join(root, "nested/deep/er"), { recursive: true });
    await fsp.mkdir(join(root, "empty"));
    await fsp.mkdir(join(root, "private"), { mode: 0o700 });
    await fsp.chmod(join(root, "private"), 0o750);
    await fsp.writeFile(join(root, "a.txt"), "alpha\n");
    await fsp.chmod(join(root, "a.txt"), 0o644);
    await fsp.writeFile(join(root, "bin/run.sh"), "#!/bin/sh\necho ran\n");
    await fsp.chmod(join(root, "bin/run.sh"), 0o755);
    await fsp.writeFile(join(root, "nested/deep/er/data.bin"), randomBytes(700_001));
    await fsp.chmod(join(root, "nested/deep/er/data.bin"), 0o600);
    await fsp.writeFile(join(root, "private/empty-file"), "");
    await fsp.chmod(join(root, "private/empty-file"), 0o640);
    await fsp.symlink("a.txt", join(root, "link-to-a"));
    await fsp.symlink("../../a.txt", join(root, "nested/deep/up-link"));
    await fsp.symlink("/etc/hostname", join(root, "abs-link"));
  }

  it("uploads a directory tree: nested dirs, modes, contents, symlinks kept as symlinks, empty dirs", async () => {
    const local = join(hostTmp, "up-tree");
    await makeHostTree(local);
    const dir = await testDir("upload");
    await sb.fs.upload(local, `${dir}/tree`);
    const listing = (await sb.sh`cd ${`${dir}/tree`} && find . -printf '%y %m %p %l\n' | sort`.text()).trimEnd();
    expect(listing.split("\n")).toEqual(
      [
        "d 755 . ",
        "f 644 ./a.txt ",
        "d 755 ./bin ",
        "f 755 ./bin/run.sh ",
        "d 755 ./empty ",
        "d 755 ./nested ",
        "d 755 ./nested/deep ",
        "d 755 ./nested/deep/er ",
        "f 600 ./nested/deep/er/data.bin ",
        "l 777 ./nested/deep/up-link ../../a.txt",
        "l 777 ./link-to-a a.txt",
        "l 777 ./abs-link /etc/hostname",
        "d 750 ./private ",
        "f 640 ./private/empty-file ",
      ].sort(),
    );
    expect(await sb.fs.readTextFile(`${dir}/tree/link-to-a`)).toBe("alpha\n");
    expect(await sb.sh`sha256sum ${`${dir}/tree/nested/deep/er/data.bin`} | cut -d' ' -f1`.text()).toBe(`${await sha256File(join(local, "nested/deep/er/data.bin"))}\n`);
    expect(await sb.sh`${`${dir}/tree/bin/run.sh`}`.text()).toBe("ran\n");
    const owners = await sb.sh`find ${`${dir}/tree`} -printf '%U:%G\n' | sort -u`.text();
    expect(owners).toBe("1000:1000\n");
  });

  it("downloads a directory tree back to an identical host tree", async () => {
    const local = join(hostTmp, "round-src");
    await makeHostTree(local);
    const dir = await testDir("download");
    await sb.fs.upload(local, `${dir}/tree`);
    // Something made inside the sandbox comes back too.
    await sb.sh`mkdir -p ${`${dir}/tree/made-inside`} && printf inside > ${`${dir}/tree/made-inside/x`} && chmod 604 ${`${dir}/tree/made-inside/x`}`;
    const back = join(hostTmp, "round-back");
    // abs-link (to /etc/hostname) leads out of the tree: a download refuses it unless told to skip it.
    await expect(sb.fs.download(`${dir}/tree`, back)).rejects.toThrow("refusing tar entry 'abs-link'");
    await sb.fs.download(`${dir}/tree`, back, { symlinks: "skip" });
    const expected = await snapshotHostTree(local);
    delete expected["abs-link"];
    expected["made-inside"] = "dir 755";
    expected["made-inside/x"] = `file 604 ${createHash("sha256").update("inside").digest("hex")}`;
    expect(await snapshotHostTree(back)).toEqual(expected);
    expect((await fsp.lstat(join(back, "link-to-a"))).isSymbolicLink()).toBe(true);
  });

  it("uploads and downloads a single file with its mode", async () => {
    const local = join(hostTmp, "single.txt");
    await fsp.writeFile(local, "single file\n");
    await fsp.chmod(local, 0o640);
    const dir = await testDir("single");
    await sb.fs.upload(local, `${dir}/single.txt`);
    expect(await sb.fs.readTextFile(`${dir}/single.txt`)).toBe("single file\n");
    expect((await sb.fs.stat(`${dir}/single.txt`)).mode & 0o7777).toBe(0o640);

    await sb.fs.writeTextFile(`${dir}/made.sh`, "#!/bin/sh\n", { mode: 0o750 });
    const back = join(hostTmp, "made.sh");
    await sb.fs.download(`${dir}/made.sh`, back);
    expect(await fsp.readFile(back, "utf8")).toBe("#!/bin/sh\n");
    expect((await fsp.stat(back)).mode & 0o777).toBe(0o750);

    await expectErrno(sb.fs.download(`${dir}/missing`, join(hostTmp, "never")), "ENOENT");
    expect(existsSync(join(hostTmp, "never"))).toBe(false);
  });

  it("moves a 1 GiB file up and down with bounded memory", async () => {
    const GiB = 1 << 30;
    const src = join(hostTmp, "big.src");
    // Sparse 1 GiB with random windows at the start, the middle (unaligned) and the end.
    const windows: Array<[number, Buffer]> = [
      [0, randomBytes(MiB)],
      [512 * MiB + 12_345, randomBytes(MiB)],
      [GiB - MiB, randomBytes(MiB)],
    ];
    const fh = await fsp.open(src, "w");
    await fh.truncate(GiB);
    for (const [off, buf] of windows) await fh.write(buf, 0, buf.length, off);
    await fh.close();
    const dir = await testDir("big");

    const measure = async (work: () => Promise<void>) => {
      const before = process.memoryUsage().rss;
      let peak = before;
      const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      try {
        await work();
      } finally {
        clearInterval(timer);
      }
      peak = Math.max(peak, process.memoryUsage().rss);
      return peak - before;
    };

    const upGrowth = await measure(() => sb.fs.upload(src, `${dir}/big.bin`));
    expect((await sb.fs.stat(`${dir}/big.bin`)).size).toBe(GiB);
    const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    for (const [off, buf] of windows) {
      expect(await sb.sh`tail -c +${String(off + 1)} ${`${dir}/big.bin`} | head -c ${String(MiB)} | sha256sum | cut -d' ' -f1`.text()).toBe(`${sha(buf)}\n`);
    }
    // Between the windows the file is zeros, as the sparse source was.
    expect(await sb.sh`tail -c +${String(MiB + 1)} ${`${dir}/big.bin`} | head -c ${String(MiB)} | tr -d '\\0' | wc -c`.text()).toBe("0\n");
    expect(upGrowth).toBeLessThan(64 << 20);

    const dst = join(hostTmp, "big.back");
    const downGrowth = await measure(() => sb.fs.download(`${dir}/big.bin`, dst));
    expect((await fsp.stat(dst)).size).toBe(GiB);
    const back = await fsp.open(dst, "r");
    try {
      for (const [off, buf] of windows) {
        const got = Buffer.alloc(buf.length);
        await back.read(got, 0, got.length, off);
        expect(sha(got)).toBe(sha(buf));
      }
    } finally {
      await back.close();
    }
    // The whole file, hashed incrementally, matches what the source holds.
    const expected = createHash("sha256");
    const zeros = Buffer.alloc(MiB);
    for (let off = 0; off < GiB; ) {
      const w = windows.find(([start]) => start === off);
      if (w) {
        expected.update(w[1]);
        off += w[1].length;
      } else {
        const next = Math.min(GiB, ...windows.map(([start]) => start).filter((s) => s > off));
        const n = Math.min(MiB, next - off);
        expected.update(zeros.subarray(0, n));
        off += n;
      }
    }
    expect(await sha256File(dst)).toBe(expected.digest("hex"));
    expect(downGrowth).toBeLessThan(64 << 20);
    const daemonPeak = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.proc.pid}/status`, "utf8"))![1]) * 1024;
    expect(daemonPeak).toBeLessThan(256 << 20);
    await fsp.rm(src);
    await fsp.rm(dst);
    await sb.fs.remove(`${dir}/big.bin`);
  }, 60_000);
});

describe("disk limit", () => {
  let small: Sandbox;
  beforeAll(async () => {
    small = await Sandbox.create({ ...daemon.opts, disk: "8MiB" });
  });
  afterAll(async () => {
    await small?.kill().catch(() => {});
  });

  it("a sandbox created with disk: 8MiB cannot write 16 MiB, and says the disk is full", async () => {
    const err = await failure(small.fs.writeFile("big.bin", new Uint8Array(16 * MiB)));
    expect(err).toBeInstanceOf(RpcError);
    expect(err.message).toMatch(/no space|ENOSPC|disk is full/i);
    // The same through the sandbox's own tools, and in /tmp.
    const viaShell = await small.sh`head -c 16777216 /dev/zero > /tmp/fill`.noThrow();
    expect(viaShell.status.code).not.toBe(0);
    expect(viaShell.stderrText).toMatch(/No space left on device/);
    // The sandbox keeps working once space is freed.
    await small.fs.remove("big.bin").catch(() => {});
    await small.fs.remove("/tmp/fill").catch(() => {});
    await small.fs.writeTextFile("after.txt", "still works");
    expect(await small.sh`cat after.txt`.text()).toBe("still works");
  });

  it("the cap covers home and /tmp together", async () => {
    await small.sh`rm -f /tmp/* ~/* 2>/dev/null; true`;
    await small.fs.writeFile("/tmp/half.bin", new Uint8Array(5 * MiB));
    const err = await failure(small.fs.writeFile("/home/sandbox/other-half.bin", new Uint8Array(5 * MiB)));
    expect(err).toBeInstanceOf(RpcError);
    expect(err.message).toMatch(/no space|ENOSPC|disk is full/i);
  });
});
