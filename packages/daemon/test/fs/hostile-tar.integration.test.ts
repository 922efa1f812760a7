import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { ErrorCodes } from "@sbx/protocol";
import { useSandbox } from "../helpers/fixtures.js";
import { RawClient } from "../helpers/raw.js";
import { makeTar } from "../../../client/test/helpers/tar.js";
import { FIRST_ENTRY, refusalText, TAR_ATTACKS, type TarLayout } from "../../../client/test/helpers/tar-attacks.js";

// If a test brings the sandbox down, that test fails; the next one gets a new sandbox.
const { daemon, sb } = useSandbox({
  replaceDead: true,
  // A writable directory a symlink could aim at: if a link were followed, the write would succeed.
  setup: (sb) => sb.fs.mkdir("/home/user/outside"),
});
let raw: RawClient;
let nextStream = 100;

/** Sends fs.upload over the raw wire: the call, then the archive as DATA frames of at most 256 KiB, then END. */
async function rawUpload(path: string, archive: Buffer): Promise<any> {
  const stream = nextStream++;
  const response = raw.call("fs.upload", { sandbox: sb.id, path, stream });
  for (let off = 0; off < archive.length; off += 256 * 1024) raw.data(stream, archive.subarray(off, off + 256 * 1024));
  raw.end(stream);
  return response;
}

// File contents are read and written with the sandbox's own tools (sb.sh) so that these
// tests depend only on fs.upload, fs.stat and friends, not on fs.readFile/fs.writeFile.

/** Every name under the sandbox's writable places, with type, permission bits and link target. */
async function writableTree(): Promise<string> {
  return sb.sh`find /home /tmp -printf '%y %m %u %p -> %l\n' | sort`.text();
}

/** Each target is /home/user/h-NAME/dest, two levels below /home/user. */
const LAYOUT: TarLayout = { base: "/home/user", up: "../.." };

/** A fresh target directory (with a sentinel file in it) and its parent. */
async function freshTarget(name: string): Promise<{ base: string; dest: string }> {
  const base = `/home/user/h-${name}-${randomBytes(3).toString("hex")}`;
  await sb.fs.mkdir(`${base}/dest`, { recursive: true });
  await sb.sh`printf %s ${"was here before"} > ${`${base}/dest/keep.txt`}`;
  return { base, dest: `${base}/dest` };
}

async function expectHealthy(): Promise<void> {
  expect(raw.closed).toBeNull();
  expect(daemon.proc.exitCode).toBeNull();
  expect(await sb.sh`echo alive`.text()).toBe("alive\n");
  const list = await Sandbox.list(daemon.opts);
  expect(list.map((s) => s.id)).toContain(sb.id);
}

beforeAll(async () => {
  raw = await RawClient.open(daemon.url, daemon.token);
});

afterAll(() => {
  raw?.close();
});

describe("fs.upload refuses hostile archives", () => {
  it.each(TAR_ATTACKS)("$name", async (attack) => {
    const { dest } = await freshTarget("case");
    await sb.sh`mkdir -p /home/user/sentinel && printf canary > /home/user/sentinel/canary && chmod 644 /home/user/sentinel/canary`;
    const before = await writableTree();
    const archive = await makeTar([FIRST_ENTRY, ...attack.entries(LAYOUT)]);
    const res = await rawUpload(dest, archive);
    expect(res.result).toBeUndefined();
    expect(res.error.code).toBe(ErrorCodes.FileSystem);
    expect(res.error.message).toContain(refusalText(attack.refusal(LAYOUT)));
    expect(res.error.data).toMatchObject({ errno: "EINVAL" });
    // Nothing was created anywhere, inside the target or out of it, and the target is as it was.
    expect(await writableTree()).toBe(before);
    expect(await sb.sh`cat ${`${dest}/keep.txt`}`.text()).toBe("was here before");
    expect(await sb.sh`cat /home/user/sentinel/canary`.text()).toBe("canary");
    expect((await sb.fs.stat("/home/user/sentinel/canary")).mode & 0o7777).toBe(0o644);
    await expectHealthy();
  });

  it("drops setuid, setgid and sticky bits and ownership from uploaded entries", async () => {
    const { dest } = await freshTarget("suid");
    const archive = await makeTar([
      [{ name: "suid", mode: 0o4755, uid: 0, gid: 0, uname: "root", gname: "root" }, "#!/bin/sh\nid -u\n"],
      [{ name: "sgid", mode: 0o2750, uid: 0, gid: 0 }, "x"],
      [{ name: "sticky", type: "directory", mode: 0o1777, uid: 0, gid: 0 }],
      [{ name: "sticky/inner", mode: 0o6777, uid: 4242, gid: 4242 }, "y"],
    ]);
    const res = await rawUpload(dest, archive);
    expect(res.error).toBeUndefined();
    expect(res.result).toEqual({ entries: 4, bytes: Buffer.byteLength("#!/bin/sh\nid -u\n") + 2 });
    const suid = await sb.fs.stat(`${dest}/suid`);
    expect(suid.mode & 0o7777).toBe(0o755);
    expect(suid.mode & 0o4000).toBe(0);
    expect([suid.uid, suid.gid]).toEqual([1000, 1000]);
    expect((await sb.fs.stat(`${dest}/sgid`)).mode & 0o7777).toBe(0o750);
    const sticky = await sb.fs.stat(`${dest}/sticky`);
    expect(sticky.isDirectory).toBe(true);
    expect(sticky.mode & 0o7000).toBe(0);
    const inner = await sb.fs.stat(`${dest}/sticky/inner`);
    expect(inner.mode & 0o7777).toBe(0o777);
    expect([inner.uid, inner.gid]).toEqual([1000, 1000]);
    expect(await sb.sh`${`${dest}/suid`}`.text()).toBe("1000\n");
    await expectHealthy();
  });

  it("a failing upload removes everything it had unpacked and keeps what was there", async () => {
    const { base, dest } = await freshTarget("rollback");
    const before = await writableTree();
    const archive = await makeTar([
      [{ name: "newdir", type: "directory", mode: 0o755 }],
      [{ name: "newdir/a.txt" }, "a"],
      [{ name: "newdir/deeper/b.txt" }, "b"],
      [{ name: "c.txt" }, "c"],
      [{ name: "ln", type: "symlink", linkname: "c.txt" }],
      [{ name: "hl", type: "link", linkname: "c.txt" }],
      [{ name: "../escape" }, "never"],
    ]);
    const res = await rawUpload(dest, archive);
    expect(res.error.message).toMatch(/refusing tar entry '\.\.\/escape'/);
    expect(await writableTree()).toBe(before);
    expect((await sb.sh`ls -A ${dest}`.text()).split("\n")).toEqual(["keep.txt", ""]);
    expect((await sb.sh`ls -A ${base}`.text()).split("\n")).toEqual(["dest", ""]);
    await expectHealthy();
  });

  it("a failing upload takes back what it made inside directories that were already there, and keeps those", async () => {
    const { dest } = await freshTarget("nested-rollback");
    await sb.fs.mkdir(`${dest}/pre/inner`, { recursive: true });
    await sb.sh`printf kept > ${`${dest}/pre/inner/old.txt`}`;
    const before = await writableTree();
    const archive = await makeTar([
      [{ name: "pre/new.txt" }, "new"],
      [{ name: "pre/inner/also-new.txt" }, "new"],
      [{ name: "pre/made/deeper/x.txt" }, "x"],
      [{ name: "pre/made/y.txt" }, "y"],
      [{ name: "pre/made/deeper", type: "directory", mode: 0o700 }],
      [{ name: "pre/inner/ln", type: "symlink", linkname: "old.txt" }],
      [{ name: "/abs" }, "never"],
    ]);
    const res = await rawUpload(dest, archive);
    expect(res.error.message).toMatch(/refusing tar entry '\/abs': is an absolute path/);
    expect(await writableTree()).toBe(before);
    expect(await sb.sh`cat ${`${dest}/pre/inner/old.txt`}`.text()).toBe("kept");
    await expectHealthy();
  });

  it("a failing upload into a new directory leaves no directory behind", async () => {
    const base = `/home/user/h-newdest-${randomBytes(3).toString("hex")}`;
    await sb.fs.mkdir(base);
    const before = await writableTree();
    const archive = await makeTar([[{ name: "ok.txt" }, "ok"], [{ name: "/abs" }, "never"]]);
    const res = await rawUpload(`${base}/new/dest`, archive);
    expect(res.error.message).toMatch(/refusing tar entry '\/abs': is an absolute path/);
    expect(await writableTree()).toBe(before);
    await expectHealthy();
  });

  it("a truncated archive fails promptly with a clear error and is rolled back", async () => {
    const { dest } = await freshTarget("trunc");
    const before = await writableTree();
    const archive = await makeTar([
      [{ name: "whole.txt" }, "complete"],
      [{ name: "cut.bin" }, randomBytes(100_000)],
    ]);
    // whole.txt takes 1024 bytes (header and padded body); cut.bin stops 100 bytes into its body.
    const res = await Promise.race([
      rawUpload(dest, archive.subarray(0, 1024 + 512 + 100)),
      sleep(5000).then(() => ({ error: { message: "no answer within 5 s" } })),
    ]);
    expect(res.error.message).toMatch(/unexpected end of data/i);
    expect(await writableTree()).toBe(before);
    await expectHealthy();
  });

  it("after every refusal the same connection still uploads a good archive", async () => {
    const { dest } = await freshTarget("good");
    const archive = await makeTar([
      [{ name: "dir", type: "directory", mode: 0o750 }],
      [{ name: "dir/file.txt", mode: 0o640 }, "good"],
      [{ name: "dir/link", type: "symlink", linkname: "file.txt" }],
      [{ name: "dir/hard", type: "link", linkname: "dir/file.txt" }],
      [{ name: "big.bin" }, randomBytes(600_000)],
    ]);
    const res = await rawUpload(dest, archive);
    expect(res.error).toBeUndefined();
    expect(res.result).toEqual({ entries: 5, bytes: 4 + 600_000 });
    expect(await sb.sh`cat ${`${dest}/dir/link`}`.text()).toBe("good");
    expect(await sb.fs.readLink(`${dest}/dir/link`)).toBe("file.txt");
    expect(await sb.sh`stat -c '%a %h' ${`${dest}/dir`} ${`${dest}/dir/file.txt`} ${`${dest}/dir/hard`}`.text()).toBe("750 2\n640 2\n640 2\n");
    expect((await sb.fs.stat(`${dest}/big.bin`)).size).toBe(600_000);
    await expectHealthy();
  });
});
