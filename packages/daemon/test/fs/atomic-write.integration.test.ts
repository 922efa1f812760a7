/**
 * fs.writeFile is atomic: the bytes go to a temporary file beside the target, renamed over it
 * only once all of them arrived. Whatever interrupts a write (the client's process dying, the
 * client aborting its stream, a full disk) leaves the old content and no temporary file, and a
 * reader inside never sees a half-written file. createNew is still EEXIST on an existing name,
 * a symlink's target is what gets replaced, and modes follow the rules of a plain overwrite.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RpcError, Sandbox } from "@sbx/client";
import { useSandbox } from "../helpers/fixtures.js";

const MiB = 1 << 20;
const CLIENT = createRequire(import.meta.url).resolve("@sbx/client");

const { daemon, sb } = useSandbox({ replaceDead: true });
let n = 0;

const filled = (size: number, byte: number) => new Uint8Array(size).fill(byte);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
/** A fresh directory, so the "no temporary file" checks see only this test's doing. */
async function dir(): Promise<string> {
  const d = `/home/user/atomic-${++n}`;
  await sb.fs.mkdir(d);
  return d;
}
const listing = async (d: string) => (await sb.sh`ls -A ${d}`.text()).trimEnd();
const insideSha = async (path: string) => (await sb.sh`sha256sum ${path} | cut -d' ' -f1`.text()).trimEnd();

/** Polls `fn` every 25 ms until it gives a truthy value, which it returns; fails naming `what` after `ms`. */
async function until<T>(what: string, fn: () => Promise<T> | T, ms = 5000): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The rejection of `p`; fails the test if it resolves. */
async function failure(p: Promise<unknown>): Promise<RpcError> {
  const outcome = await p.then(
    () => null,
    (e: unknown) => e as RpcError,
  );
  if (!outcome) throw new Error("expected a rejection");
  return outcome;
}

describe("an interrupted overwrite leaves the old content and no temporary file", () => {
  it("the client's process killed in the middle of overwriting a 20 MiB file", async () => {
    const d = await dir();
    const target = `${d}/big.bin`;
    const old = filled(20 * MiB, 0x41);
    await sb.fs.writeFile(target, old);
    // Another client (its own process and connection) starts a 20 MiB overwrite, sends 12 MiB and stalls.
    const script = join(tmpdir(), `sbx-atomic-${process.pid}-${n}.cjs`);
    writeFileSync(
      script,
      `const { Sandbox } = require(${JSON.stringify(CLIENT)});
(async () => {
  const sb = await Sandbox.connect(process.env.SBX_ID, { url: process.env.SBX_URL, token: process.env.SBX_TOKEN });
  const chunk = new Uint8Array(1 << 20).fill(0x42);
  let sent = 0;
  const stream = new ReadableStream({
    pull(c) {
      if (sent === 12 << 20) { process.stdout.write("sent\\n"); return new Promise(() => {}); }
      c.enqueue(chunk);
      sent += chunk.length;
    },
  });
  await sb.fs.writeFile(process.env.TARGET, stream);
})();`,
    );
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, SBX_ID: sb.id, SBX_URL: daemon.url, SBX_TOKEN: daemon.token, TARGET: target },
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      let out = "";
      child.stdout!.on("data", (c) => (out += c));
      await until("the other client to send 12 MiB", () => out.includes("sent"), 20_000);
      // The bytes are arriving in a temporary file beside the target...
      const tmp = await until(
        "the temporary file to hold most of them",
        async () => (await sb.sh`find ${d} -name '.big.bin.sbx-*.tmp' -size +10M`.text()).trimEnd() || null,
        10_000,
      );
      expect(tmp).toMatch(/^\/home\/user\/atomic-\d+\/\.big\.bin\.sbx-[0-9a-f]{16}\.tmp$/);
      // ...while a reader inside still sees the whole old file, never a half-written one.
      expect(await insideSha(target)).toBe(sha(old));
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      await until("the temporary file to go", async () => (await listing(d)) === "big.bin", 5000);
    } finally {
      child.kill("SIGKILL");
      rmSync(script, { force: true });
    }
    expect(await insideSha(target)).toBe(sha(old));
    expect((await sb.fs.stat(target)).size).toBe(20 * MiB);
  }, 60_000);

  it("a stream the client aborts", async () => {
    const d = await dir();
    await sb.fs.writeTextFile(`${d}/f.txt`, "old content");
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 3 * MiB) return c.error(new Error("the source broke"));
        c.enqueue(filled(MiB, 0x42));
        sent += MiB;
      },
    });
    const err = await failure(sb.fs.writeFile(`${d}/f.txt`, stream));
    expect(err).toBeInstanceOf(RpcError);
    expect(err.message).toMatch(/abort/i);
    await until("the temporary file to go", async () => (await listing(d)) === "f.txt", 5000);
    expect(await sb.fs.readTextFile(`${d}/f.txt`)).toBe("old content");
  });

  it("a full disk (ENOSPC)", async () => {
    const small = await Sandbox.create({ ...daemon.opts, disk: "8MiB" });
    try {
      await small.fs.mkdir("d");
      const old = filled(3 * MiB, 0x41);
      await small.fs.writeFile("d/f.bin", old);
      // The new version and the old one do not fit side by side.
      const err = await failure(small.fs.writeFile("d/f.bin", filled(6 * MiB, 0x42)));
      expect(err.errno).toBe("ENOSPC");
      expect(err.message).toMatch(/no space left: the sandbox's disk is full/);
      expect(await small.sh`ls -A d`.text()).toBe("f.bin\n");
      expect(await small.sh`sha256sum d/f.bin | cut -d' ' -f1`.text()).toBe(`${sha(old)}\n`);
      // The space the attempt used is free again: a smaller new version fits.
      await small.fs.writeFile("d/f.bin", filled(4 * MiB, 0x43));
      expect((await small.fs.stat("d/f.bin")).size).toBe(4 * MiB);
    } finally {
      await small.kill();
    }
  });
});

describe("what an overwrite keeps and refuses", () => {
  it("createNew is EEXIST for an existing name, a dangling symlink included, and leaves it alone", async () => {
    const d = await dir();
    await sb.fs.writeTextFile(`${d}/f.txt`, "first");
    const err = await failure(sb.fs.writeTextFile(`${d}/f.txt`, "second", { createNew: true }));
    expect(err.errno).toBe("EEXIST");
    expect(err.message).toBe(`EEXIST: file already exists, open '${d}/f.txt'`);
    await sb.fs.symlink("nowhere", `${d}/dangling`);
    expect((await failure(sb.fs.writeTextFile(`${d}/dangling`, "x", { createNew: true }))).errno).toBe("EEXIST");
    expect(await sb.fs.readLink(`${d}/dangling`)).toBe("nowhere");
    expect(await sb.fs.readTextFile(`${d}/f.txt`)).toBe("first");
    await sb.fs.writeTextFile(`${d}/new.txt`, "fresh", { createNew: true });
    expect(await sb.fs.readTextFile(`${d}/new.txt`)).toBe("fresh");
    expect((await listing(d)).split("\n").sort()).toEqual(["dangling", "f.txt", "new.txt"]);
  });

  it("of two createNew writes racing to one name, exactly one wins and the other is EEXIST", async () => {
    const d = await dir();
    // Both are open (past the existence check) before either finishes.
    const gate = { open: () => {} };
    const opened = new Promise<void>((r) => (gate.open = r));
    const slow = (byte: number) =>
      new ReadableStream<Uint8Array>({
        async start(c) {
          c.enqueue(filled(1000, byte));
          await opened;
          c.close();
        },
      });
    const a = sb.fs.writeFile(`${d}/race`, slow(0x61), { createNew: true }).then(() => "a", (e: RpcError) => e.errno);
    const b = sb.fs.writeFile(`${d}/race`, slow(0x62), { createNew: true }).then(() => "b", (e: RpcError) => e.errno);
    await until("both writes to be under way", async () => (await sb.sh`ls -A ${d} | grep -c sbx- || true`.text()) === "2\n", 5000);
    gate.open();
    const results = await Promise.all([a, b]);
    expect(results.filter((r) => r === "EEXIST")).toHaveLength(1);
    const winner = results.find((r) => r !== "EEXIST")!;
    expect(["a", "b"]).toContain(winner);
    expect(await sb.fs.readTextFile(`${d}/race`)).toBe(winner.repeat(1000));
    expect(await listing(d)).toBe("race");
  });

  it("writing through a symlink replaces the file it points to, not the link", async () => {
    const d = await dir();
    await sb.fs.mkdir(`${d}/sub`);
    await sb.fs.writeTextFile(`${d}/sub/real.txt`, "old");
    await sb.fs.symlink("sub/real.txt", `${d}/link`);
    await sb.fs.symlink("link", `${d}/link-to-link`);
    // '..' in a target is the kernel's to resolve from the link's own directory.
    await sb.fs.symlink("../sub/./real.txt", `${d}/sub/climb`);
    for (const [via, text] of [["link", "one"], ["link-to-link", "two"], ["sub/climb", "three"]]) {
      await sb.fs.writeTextFile(`${d}/${via}`, text!);
      expect(await sb.fs.readTextFile(`${d}/sub/real.txt`)).toBe(text);
      expect((await sb.fs.lstat(`${d}/${via}`)).isSymlink).toBe(true);
    }
    expect(await sb.fs.readLink(`${d}/link`)).toBe("sub/real.txt");
    // A dangling link gets its target created, as open(O_CREAT) would.
    await sb.fs.symlink("sub/later.txt", `${d}/dangling`);
    await sb.fs.writeTextFile(`${d}/dangling`, "created");
    expect(await sb.fs.readTextFile(`${d}/sub/later.txt`)).toBe("created");
    expect((await sb.fs.lstat(`${d}/dangling`)).isSymlink).toBe(true);
    expect((await listing(`${d}/sub`)).split("\n").sort()).toEqual(["climb", "later.txt", "real.txt"]);
  });

  it("an existing file keeps its mode; a new one gets 0644 or the mode asked for; an explicit mode always applies", async () => {
    const d = await dir();
    await sb.fs.writeTextFile(`${d}/private`, "v1");
    await sb.fs.chmod(`${d}/private`, 0o600);
    await sb.fs.writeTextFile(`${d}/private`, "v2");
    expect((await sb.fs.stat(`${d}/private`)).mode & 0o7777).toBe(0o600);
    await sb.fs.writeTextFile(`${d}/plain`, "x");
    expect((await sb.fs.stat(`${d}/plain`)).mode & 0o7777).toBe(0o644);
    await sb.fs.writeTextFile(`${d}/tool`, "#!/bin/sh\n", { mode: 0o750 });
    expect((await sb.fs.stat(`${d}/tool`)).mode & 0o7777).toBe(0o750);
    await sb.fs.writeTextFile(`${d}/private`, "v3", { mode: 0o640 });
    expect((await sb.fs.stat(`${d}/private`)).mode & 0o7777).toBe(0o640);
    expect(await sb.fs.readTextFile(`${d}/private`)).toBe("v3");
  });

  it("a reader that opened the old file keeps reading the old content while the new one lands", async () => {
    const d = await dir();
    await sb.fs.writeTextFile(`${d}/f.txt`, "the old version\n");
    // The shell opens the file on fd 3 before the overwrite, then reads it after.
    const reader = await sb.spawn("bash", { args: ["-c", `exec 3< ${d}/f.txt; echo opened; read -r gate; cat <&3`], stdin: "piped" });
    const out = reader.stdout!.getReader();
    expect(new TextDecoder().decode((await out.read()).value)).toBe("opened\n");
    await sb.fs.writeTextFile(`${d}/f.txt`, "the new version\n");
    const w = reader.stdin!.getWriter();
    await w.write(new TextEncoder().encode("go\n"));
    await w.close();
    expect(new TextDecoder().decode((await out.read()).value)).toBe("the old version\n");
    expect((await reader.status).code).toBe(0);
    expect(await sb.fs.readTextFile(`${d}/f.txt`)).toBe("the new version\n");
  });
});

describe("a large write goes to the disk as it arrives and leaves the page cache behind it", () => {
  /** Bytes of `path` in the page cache, as fincore (util-linux) counts them inside the sandbox. */
  const cached = async (path: string) => Number((await sb.sh`fincore --bytes --noheadings --output RES ${path}`.text()).trim());
  /** Bytes of `path` between `from` and `to` in the page cache (mincore(2) over a mapping of it, from Python inside). */
  const MINCORE = `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED: mapping reads nothing in
vec = (ctypes.c_ubyte * ((size + 4095) // 4096))()
assert libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) == 0
print(sum(b & 1 for b in vec[int(sys.argv[2]) // 4096:int(sys.argv[3]) // 4096]) * 4096)`;
  const residentBytes = async (path: string, from: number, to: number) => Number((await sb.sh`python3 -c ${MINCORE} ${path} ${from} ${to}`.text()).trim());
  /** `size` bytes in 1 MiB chunks, chunk i filled with byte i. */
  const chunks = (size: number) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < size / MiB; i++) c.enqueue(filled(MiB, i & 0xff));
        c.close();
      },
    });
  const expectedSha = (size: number) => {
    const h = createHash("sha256");
    for (let i = 0; i < size / MiB; i++) h.update(filled(MiB, i & 0xff));
    return h.digest("hex");
  };

  it("96 MiB written (and overwritten): all of it there, at most its last 32 MiB still cached", async () => {
    const d = await dir();
    for (let round = 0; round < 2; round++) {
      await sb.fs.writeFile(`${d}/big.bin`, chunks(96 * MiB));
      // Each chunk is dropped once written, two chunks behind the one being handed to the disk:
      // the last three 8 MiB chunks may stay (without the drop all 96 MiB do).
      expect(await cached(`${d}/big.bin`)).toBeLessThanOrEqual(32 * MiB);
      expect(await insideSha(`${d}/big.bin`)).toBe(expectedSha(96 * MiB)); // (read back: all cached now)
    }
  });

  it("fs.upload too: a 64 MiB file of a tree leaves at most its last 32 MiB cached", async () => {
    const local = mkdtempSync(join(tmpdir(), "sbx-upload-behind-"));
    try {
      mkdirSync(join(local, "tree"));
      const h = createHash("sha256");
      const big = Buffer.alloc(64 * MiB);
      for (let i = 0; i < 64; i++) big.fill(i, i * MiB, (i + 1) * MiB), h.update(big.subarray(i * MiB, (i + 1) * MiB));
      writeFileSync(join(local, "tree", "big.bin"), big);
      writeFileSync(join(local, "tree", "small.bin"), filled(MiB, 1));
      const d = await dir();
      await sb.fs.upload(join(local, "tree"), `${d}/tree`);
      expect(await cached(`${d}/tree/big.bin`)).toBeLessThanOrEqual(32 * MiB); // (64 without the drop)
      expect(await cached(`${d}/tree/small.bin`)).toBe(MiB);
      expect(await insideSha(`${d}/tree/big.bin`)).toBe(h.digest("hex"));
    } finally {
      rmSync(local, { recursive: true, force: true });
    }
  });

  it("a small file stays cached whole", async () => {
    const d = await dir();
    await sb.fs.writeFile(`${d}/small.bin`, chunks(20 * MiB));
    expect(await cached(`${d}/small.bin`)).toBe(20 * MiB);
  });

  it("appending 40 MiB to a file in place: the offsets are the file's, so its old content stays cached and intact", async () => {
    const d = await dir();
    await sb.fs.writeFile(`${d}/log.bin`, filled(4 * MiB, 0x7a));
    const before = await cached(`${d}/log.bin`);
    await sb.fs.writeFile(`${d}/log.bin`, chunks(40 * MiB), { append: true });
    expect((await sb.fs.stat(`${d}/log.bin`)).size).toBe(44 * MiB);
    // Dropped: chunks of the appended bytes only, counted from where the file ended.
    expect(before).toBe(4 * MiB);
    expect(await cached(`${d}/log.bin`)).toBeLessThanOrEqual(4 * MiB + 32 * MiB); // (all 44 MiB without the drop)
    expect(await residentBytes(`${d}/log.bin`, 0, 4 * MiB)).toBe(4 * MiB);
    const h = createHash("sha256").update(filled(4 * MiB, 0x7a));
    for (let i = 0; i < 40; i++) h.update(filled(MiB, i));
    expect(await insideSha(`${d}/log.bin`)).toBe(h.digest("hex"));
  });
});

describe("an acknowledged write is on disk", () => {
  /** Bytes of the sandbox's page cache still waiting to be written (its memory cgroup's count: v1 "dirty", v2 "file_dirty"). */
  const dirtyBytes = () => {
    const name = `sbx-${createHash("sha256").update(daemon.stateDir).digest("hex").slice(0, 12)}`;
    const v1 = join("/sys/fs/cgroup/memory", name, sb.id, "memory.stat");
    const stat = readFileSync(existsSync(v1) ? v1 : join("/sys/fs/cgroup", name, sb.id, "memory.stat"), "utf8");
    return Number(/^(?:dirty|file_dirty) (\d+)$/m.exec(stat)![1]);
  };

  it("fs.writeFile of 36 MiB: nothing of it left unwritten when the call returns", async () => {
    const d = await dir();
    await sb.fs.writeFile(`${d}/f.bin`, filled(36 * MiB, 0x33));
    expect(dirtyBytes()).toBeLessThan(MiB);
  });

  it("fs.upload of a tree (64 files, 32 MiB): nothing of it left unwritten when the call returns", async () => {
    const local = mkdtempSync(join(tmpdir(), "sbx-upload-sync-"));
    try {
      mkdirSync(join(local, "tree"));
      for (let i = 0; i < 64; i++) writeFileSync(join(local, "tree", `f${i}`), filled(MiB / 2, i));
      const d = await dir();
      // Nothing written back on its own meanwhile: the kernel waits 30 s before writing dirty pages back.
      await sb.fs.upload(join(local, "tree"), `${d}/tree`);
      expect(dirtyBytes()).toBeLessThan(MiB);
      expect(await sb.sh`cat ${d}/tree/f63 | sha256sum | cut -d' ' -f1`.text()).toBe(`${sha(filled(MiB / 2, 63))}\n`);
    } finally {
      rmSync(local, { recursive: true, force: true });
    }
  });
});
