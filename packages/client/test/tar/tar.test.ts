import { createHash, randomBytes } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync, statSync } from "node:fs";
import * as fsp from "node:fs/promises";
import fspModule from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import * as tar from "tar-stream";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { packTree, TarEntryError, unpackTar } from "../../src/tar/index.js";
import { makeTar, type Entry } from "../helpers/tar.js";
import { FIRST_ENTRY, refusalText, TAR_ATTACKS, TAR_ATTACKS_JSON, tarAttacksJson } from "../helpers/tar-attacks.js";

// These run on the user's machine when `download` unpacks what a (possibly hostile) sandbox sent.

// unpackTar hands the fd of a FileHandle to a write stream and drops the handle: when the
// handle is garbage collected later, Node closes that fd number again, which either closes an
// unrelated file that reused the number or (EBADF) kills the whole process. The test "closes
// the files it opens itself" below shows it. So that one GC cannot take this whole file down,
// every FileHandle opened while these tests run is kept reachable, except during that test.
const keptHandles: fsp.FileHandle[] = [];
const realOpen = fspModule.open;
function keepHandlesAlive(on: boolean) {
  (fspModule as { open: typeof realOpen }).open = on
    ? async (...args: Parameters<typeof realOpen>) => {
        const handle = await realOpen(...args);
        keptHandles.push(handle);
        return handle;
      }
    : realOpen;
  syncBuiltinESMExports();
}
beforeAll(() => keepHandlesAlive(true));
afterAll(() => keepHandlesAlive(false));


async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Everything below `dir`: type, permission bits, owner, link count, contents or link target. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function visit(path: string) {
    const st = await fsp.lstat(path);
    const rel = relative(dir, path) || ".";
    const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out[rel] = `symlink ${meta} -> ${await fsp.readlink(path)}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${meta}`;
      for (const child of (await fsp.readdir(path)).sort()) await visit(join(path, child));
    } else if (st.isFile()) out[rel] = `file ${meta} n${st.nlink} ${createHash("sha256").update(await fsp.readFile(path)).digest("hex")}`;
    else out[rel] = `special ${meta} ${st.mode.toString(8)}`;
  }
  await visit(dir);
  return out;
}

let root: string;
let dest: string;

beforeEach(async () => {
  // root/dest is the target (already holding a file), root/sentinel and root/outside are
  // siblings an escaping entry would reach.
  root = await fsp.mkdtemp(join(tmpdir(), "sbx-tar-test-"));
  dest = join(root, "dest");
  await fsp.mkdir(dest);
  await fsp.writeFile(join(dest, "keep.txt"), "was here before");
  await fsp.mkdir(join(root, "sentinel"));
  await fsp.writeFile(join(root, "sentinel", "canary"), "canary");
  await fsp.chmod(join(root, "sentinel", "canary"), 0o644);
  await fsp.mkdir(join(root, "outside"));
});

afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

describe("unpackTar refuses hostile archives and writes nothing outside dest", () => {
  it.each(TAR_ATTACKS)("$name", async (attack) => {
    const before = await snapshot(root);
    const archive = await makeTar([FIRST_ENTRY, ...attack.entries({ base: root, up: ".." })]);
    const err = await unpackTar(Readable.from([archive]), dest).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TarEntryError);
    expect((err as TarEntryError).code).toBe("EINVAL");
    expect((err as Error).message).toContain(refusalText(attack.refusal({ base: root, up: ".." })));
    // Nothing anywhere under root changed: not the siblings, not dest (rolled back).
    expect(await snapshot(root)).toEqual(before);
  });

  it("the Python tests read the same table (tar_attacks.json is up to date)", () => {
    expect(readFileSync(TAR_ATTACKS_JSON, "utf8"), "regenerate it: npx tsx packages/client/test/helpers/gen-tar-attacks.ts").toBe(tarAttacksJson());
  });

  it("replaces a symlink by a file entry of the same name instead of writing through it", async () => {
    const archive = await makeTar([
      [{ name: "f", type: "symlink", linkname: join(root, "sentinel", "canary") }],
      [{ name: "f" }, "replaced"],
      [{ name: "g", type: "symlink", linkname: "../sentinel/canary" }],
      [{ name: "g" }, "replaced too"],
    ]);
    expect(await unpackTar(Readable.from([archive]), dest)).toEqual({ entries: 4, bytes: "replaced".length + "replaced too".length });
    expect((await fsp.lstat(join(dest, "f"))).isFile()).toBe(true);
    expect(await fsp.readFile(join(dest, "f"), "utf8")).toBe("replaced");
    expect(await fsp.readFile(join(dest, "g"), "utf8")).toBe("replaced too");
    expect(await fsp.readFile(join(root, "sentinel", "canary"), "utf8")).toBe("canary");
    expect((await fsp.stat(join(root, "sentinel", "canary"))).nlink).toBe(1);
  });

  it("refuses to write through a symlink that was already in dest", async () => {
    await fsp.symlink("../outside", join(dest, "pre-link"));
    const before = await snapshot(root);
    const archive = await makeTar([[{ name: "pre-link/pwned" }, "x"]]);
    await expect(unpackTar(Readable.from([archive]), dest)).rejects.toThrow(/'pre-link' is a symlink; refusing to write through it/);
    expect(await snapshot(root)).toEqual(before);
  });

  it("drops setuid, setgid and sticky bits and ignores ownership", async () => {
    const archive = await makeTar([
      [{ name: "suid", mode: 0o4755, uid: 4242, gid: 4242, uname: "evil", gname: "evil" }, "#!/bin/sh\n"],
      [{ name: "sgid", mode: 0o2750, uid: 0, gid: 0 }, "x"],
      [{ name: "sticky", type: "directory", mode: 0o1777, uid: 4242, gid: 4242 }],
      [{ name: "sticky/all", mode: 0o7777, uid: 4242, gid: 4242 }, "y"],
    ]);
    await unpackTar(Readable.from([archive]), dest);
    const me = [process.getuid!(), process.getgid!()];
    const suid = await fsp.stat(join(dest, "suid"));
    expect(suid.mode & 0o7777).toBe(0o755);
    expect([suid.uid, suid.gid]).toEqual(me);
    expect((await fsp.stat(join(dest, "sgid"))).mode & 0o7777).toBe(0o750);
    const sticky = await fsp.stat(join(dest, "sticky"));
    expect(sticky.mode & 0o7000).toBe(0);
    expect([sticky.uid, sticky.gid]).toEqual(me);
    const all = await fsp.stat(join(dest, "sticky", "all"));
    expect(all.mode & 0o7777).toBe(0o777);
    expect([all.uid, all.gid]).toEqual(me);
  });

  it("a failure removes everything it had unpacked and keeps what was there", async () => {
    await fsp.writeFile(join(dest, "existing-dir-file"), "mine");
    const before = await snapshot(root);
    const archive = await makeTar([
      [{ name: "newdir", type: "directory", mode: 0o755 }],
      [{ name: "newdir/a.txt" }, "a"],
      [{ name: "implicit/parents/b.txt" }, "b"],
      [{ name: "c.txt" }, "c"],
      [{ name: "ln", type: "symlink", linkname: "c.txt" }],
      [{ name: "hl", type: "link", linkname: "c.txt" }],
      [{ name: "../escape" }, "never"],
    ]);
    await expect(unpackTar(Readable.from([archive]), dest)).rejects.toThrow(/refusing tar entry '\.\.\/escape'/);
    expect(await snapshot(root)).toEqual(before);
  });

  it("a failure into a new directory leaves no directory behind", async () => {
    const before = await snapshot(root);
    const archive = await makeTar([[{ name: "ok.txt" }, "ok"], [{ name: "../escape" }, "never"]]);
    await expect(unpackTar(Readable.from([archive]), join(root, "new", "dest"))).rejects.toThrow(TarEntryError);
    expect(await snapshot(root)).toEqual(before);
  });

  /** `p`, or a rejection saying it did not settle within `ms`. */
  function settlesWithin<T>(p: Promise<T>, ms: number): Promise<T> {
    return Promise.race([p, sleep(ms).then(() => Promise.reject(new Error(`did not settle within ${ms} ms`)))]);
  }

  it.each([
    ["100 bytes into the only file", 1, 512 + 100],
    ["10 KiB into the only file", 1, 512 + 10_240],
    ["40 KiB into the only file", 1, 512 + 40_960],
    ["in the second file's header", 2, 512 + 100_352 + 200],
    ["5 KB into the second file", 2, 512 + 100_352 + 512 + 5000],
  ])("an archive truncated %s fails promptly and is rolled back", async (_label, files, cut) => {
    const archive = await makeTar(Array.from({ length: files }, (_, i): Entry => [{ name: `f${i}.bin` }, randomBytes(100_000)]));
    expect(cut).toBeLessThan(archive.length - 1024);
    const before = await snapshot(root);
    await expect(settlesWithin(unpackTar(Readable.from([archive.subarray(0, cut)]), dest), 2000)).rejects.toThrow(/unexpected end of data|ended inside/i);
    expect(await snapshot(root)).toEqual(before);
  });

  it("a source stream that fails mid-way fails the unpack and is rolled back", async () => {
    const archive = await makeTar([
      [{ name: "a.bin" }, randomBytes(100_000)],
      [{ name: "b.bin" }, randomBytes(100_000)],
    ]);
    const before = await snapshot(root);
    const source = new Readable({ read() {} });
    source.push(archive.subarray(0, 150_000));
    setTimeout(() => source.destroy(new Error("connection lost")), 20);
    await expect(unpackTar(source, dest)).rejects.toThrow(/connection lost/);
    expect(await snapshot(root)).toEqual(before);
  });

  it("stops after maxEntries", async () => {
    const before = await snapshot(root);
    const archive = await makeTar(Array.from({ length: 6 }, (_, i): Entry => [{ name: `f${i}` }, "x"]));
    await expect(unpackTar(Readable.from([archive]), dest, { maxEntries: 5 })).rejects.toThrow(/refusing tar entry 'f5': archive has more than 5 entries/);
    expect(await snapshot(root)).toEqual(before);
    expect(await unpackTar(Readable.from([archive]), dest, { maxEntries: 6 })).toEqual({ entries: 6, bytes: 6 });
  });

  it("stops at maxBytes of declared file sizes, before writing the file that would pass it", async () => {
    const before = await snapshot(root);
    const archive = await makeTar([[{ name: "a" }, "x".repeat(1000)], [{ name: "sub/b" }, "y".repeat(1000)], [{ name: "c" }, "z".repeat(1000)]]);
    await expect(unpackTar(Readable.from([archive]), dest, { maxBytes: 2999 })).rejects.toThrow("refusing tar entry 'c': declares 1000 bytes, which would take the archive past 2999 bytes");
    expect(await snapshot(root)).toEqual(before);
    const tooBig = (name: string, size: number, sofar: number) => new RangeError(`${name} ${size} ${sofar}`);
    await expect(unpackTar(Readable.from([archive]), dest, { maxBytes: 2999, tooBig })).rejects.toThrow(new RangeError("c 1000 2000"));
    expect(await unpackTar(Readable.from([archive]), dest, { maxBytes: 3000 })).toEqual({ entries: 3, bytes: 3000 });
  });

  it("refuses a file declaring a terabyte from its header alone (base-256 size), with none of its data sent", async () => {
    const before = await snapshot(root);
    // Only the header of a 1 TiB entry: the data never comes, as the refusal must not wait for it.
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    pack.on("data", (c: unknown) => chunks.push(c as Buffer));
    pack.entry({ name: "huge", size: 2 ** 40, mode: 0o644 });
    await sleep(10);
    const header = Buffer.concat(chunks);
    expect(header.length).toBe(512);
    const source = new Readable({ read() {} });
    source.push(header);
    await expect(settlesWithin(unpackTar(source, dest, { maxBytes: 10 * 2 ** 30 }), 2000)).rejects.toThrow(`refusing tar entry 'huge': declares ${2 ** 40} bytes`);
    expect(source.destroyed).toBe(true);
    expect(await snapshot(root)).toEqual(before);
  });

  it("refuses a dest that is not a directory", async () => {
    await fsp.writeFile(join(root, "a-file"), "x");
    const archive = await makeTar([[{ name: "f" }, "x"]]);
    const err = await unpackTar(Readable.from([archive]), join(root, "a-file")).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(["ENOTDIR", "EEXIST"]).toContain(err?.code);
    expect(await fsp.readFile(join(root, "a-file"), "utf8")).toBe("x");
  });

  it("closes the files it opens itself: a later GC closes no one else's descriptor", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const archive = await makeTar(Array.from({ length: 4 }, (_, i): Entry => [{ name: `f${i}.txt` }, `file ${i}`]));
    keepHandlesAlive(false);
    try {
      await unpackTar(Readable.from([archive]), dest);
    } finally {
      keepHandlesAlive(true);
    }
    // The descriptors unpackTar used are free again; the application opens files that reuse them.
    const victims = Array.from({ length: 32 }, (_, i) => {
      const path = join(root, "outside", `victim-${i}`);
      return { path, fd: openSync(path, "w") };
    });
    try {
      for (let i = 0; i < 3; i++) {
        gc();
        await sleep(20);
      }
      const closed = victims.filter(({ path, fd }) => {
        try {
          return fstatSync(fd).ino !== statSync(path).ino;
        } catch {
          return true;
        }
      });
      expect(closed.map((v) => v.fd)).toEqual([]);
    } finally {
      for (const { fd } of victims) {
        try {
          closeSync(fd);
        } catch {}
      }
    }
    expect(await fsp.readFile(join(dest, "f3.txt"), "utf8")).toBe("file 3");
  });
});

describe("packTree and unpackTar round trip", () => {
  async function makeTree(src: string) {
    await fsp.mkdir(join(src, "bin"), { recursive: true });
    await fsp.mkdir(join(src, "deep/er/est"), { recursive: true });
    await fsp.mkdir(join(src, "empty-dir"));
    await fsp.mkdir(join(src, "private"));
    await fsp.writeFile(join(src, "readme.md"), "# hello\n");
    await fsp.writeFile(join(src, "bin/tool"), "#!/bin/sh\necho tool\n");
    await fsp.chmod(join(src, "bin/tool"), 0o755);
    await fsp.writeFile(join(src, "deep/er/est/data.bin"), randomBytes(1_300_000));
    await fsp.writeFile(join(src, "private/key"), "secret");
    await fsp.chmod(join(src, "private/key"), 0o600);
    await fsp.chmod(join(src, "private"), 0o750);
    await fsp.writeFile(join(src, "empty-file"), "");
    await fsp.chmod(join(src, "empty-file"), 0o640);
    await fsp.symlink("readme.md", join(src, "link-rel"));
    await fsp.symlink("../../readme.md", join(src, "deep/er/link-up"));
    await fsp.symlink("/nonexistent/absolute/target", join(src, "link-abs-dangling"));
    await fsp.symlink("deep/er", join(src, "link-dir"));
    const old = new Date("2020-02-02T02:02:02Z");
    await fsp.utimes(join(src, "readme.md"), old, old);
  }

  it("preserves contents, modes, symlinks (unfollowed) and empty dirs, and skips fifos", async () => {
    const src = join(root, "src");
    await makeTree(src);
    const { execFileSync } = await import("node:child_process");
    execFileSync("mkfifo", [join(src, "a-fifo")]);
    const out = join(root, "out");
    const { stream, done } = packTree(src);
    const [archive, packed] = await Promise.all([collect(stream), done]);
    const unpacked = await unpackTar(Readable.from([archive]), out);
    expect(packed).toEqual({ entries: 15, bytes: 8 + 20 + 1_300_000 + 6 });
    expect(unpacked).toEqual(packed);

    const original = await snapshot(src);
    delete original["a-fifo"];
    expect(await snapshot(out)).toEqual(original);
    expect((await fsp.lstat(join(out, "link-dir"))).isSymbolicLink()).toBe(true);
    expect(await fsp.readlink(join(out, "link-abs-dangling"))).toBe("/nonexistent/absolute/target");
    expect(Math.floor((await fsp.stat(join(out, "readme.md"))).mtimeMs / 1000)).toBe(Date.parse("2020-02-02T02:02:02Z") / 1000);
  });

  it("packs a single file under its basename", async () => {
    const file = join(root, "single.txt");
    await fsp.writeFile(file, "just me");
    await fsp.chmod(file, 0o604);
    const { stream, done } = packTree(file);
    const archive = await collect(stream);
    expect(await done).toEqual({ entries: 1, bytes: 7 });
    const out = join(root, "out");
    await unpackTar(Readable.from([archive]), out);
    expect(await snapshot(out)).toEqual({ ".": expect.stringMatching(/^dir /), "single.txt": `file 604 ${process.getuid!()}:${process.getgid!()} n1 ${createHash("sha256").update("just me").digest("hex")}` });
  });

  it("unpacking over an existing tree replaces files and keeps the rest", async () => {
    await fsp.mkdir(join(dest, "sub"));
    await fsp.writeFile(join(dest, "sub", "old.txt"), "old");
    const archive = await makeTar([
      [{ name: "keep.txt" }, "new contents"],
      [{ name: "sub", type: "directory" }],
      [{ name: "sub/new.txt" }, "new"],
    ]);
    await unpackTar(Readable.from([archive]), dest);
    expect(await fsp.readFile(join(dest, "keep.txt"), "utf8")).toBe("new contents");
    expect((await fsp.readdir(join(dest, "sub"))).sort()).toEqual(["new.txt", "old.txt"]);
  });
});
