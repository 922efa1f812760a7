/**
 * A download writes onto the caller's disk what the sandbox declares: a sandbox with a 1 GiB disk
 * can `truncate -s 1T` a sparse file that takes no blocks there and would fill the caller's disk
 * with a terabyte of zeros. `download` counts the sizes the tar headers declare (and, for a single
 * file, its size) against `maxBytes` before writing any of it, removes what it had written when
 * refused, and stops the sandbox sending.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { execFileSync, spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MAX_DOWNLOAD_BYTES, ResourceLimitError, Sandbox } from "@sbx/client";
import { useSandbox } from "../helpers/fixtures.js";
import { ok, runBash } from "../helpers/bash.js";

const { daemon, sb } = useSandbox({ sandbox: { disk: "1GiB" } });
let local: string;

beforeAll(() => {
  local = mkdtempSync(join(tmpdir(), "sbx-download-limit-"));
});
afterAll(() => {
  rmSync(local, { recursive: true, force: true });
});

const freeBytes = (path: string) => {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
};

async function refusal(call: Promise<unknown>): Promise<ResourceLimitError> {
  const started = Date.now();
  const err = await call.catch((e: unknown) => e);
  // Refused at the header, with the stream cancelled: not after streaming gigabytes.
  expect(Date.now() - started).toBeLessThan(15_000);
  expect(err).toBeInstanceOf(ResourceLimitError);
  return err as ResourceLimitError;
}

describe("download writes at most maxBytes", () => {
  it("a 1 TiB sparse file, alone or in a tree, is refused before any of it is written, and nothing is left", async () => {
    ok(await runBash(sb, "mkdir -p /home/user/out && echo small > /home/user/out/a.txt && truncate -s 1T /home/user/out/huge && du -k /home/user/out/huge"), "bash");
    expect(DEFAULT_MAX_DOWNLOAD_BYTES).toBe(10 * 2 ** 30);
    const before = freeBytes(local);

    const tree = join(local, "tree");
    const err = await refusal(sb.fs.download("/home/user/out", tree));
    expect(err.message).toBe(
      `downloading /home/user/out would write more than maxBytes (${DEFAULT_MAX_DOWNLOAD_BYTES} bytes): /home/user/out/huge is ${2 ** 40} bytes after 6 already; pass a larger { maxBytes } to download it`,
    );
    expect(existsSync(tree)).toBe(false);

    const single = join(local, "huge");
    const err2 = await refusal(sb.fs.download("/home/user/out/huge", single, { maxBytes: 2 ** 39 }));
    expect(err2.message).toBe(`downloading /home/user/out/huge would write more than maxBytes (${2 ** 39} bytes): /home/user/out/huge is ${2 ** 40} bytes; pass a larger { maxBytes } to download it`);
    expect(existsSync(single)).toBe(false);

    expect(readdirSync(local)).toEqual([]);
    // Other processes share this disk: allow them a little, but nowhere near the 10 GiB limit.
    expect(before - freeBytes(local)).toBeLessThan(64 * 2 ** 20);
    // The sandbox stopped sending: the connection is free for the next download straight away.
    await sb.fs.download("/home/user/out/a.txt", join(local, "a.txt"));
    expect(readFileSync(join(local, "a.txt"), "utf8")).toBe("small\n");
    rmSync(join(local, "a.txt"));
  });

  it("a tree just under maxBytes downloads; one byte more is refused, leaving the caller's own files alone", async () => {
    ok(await runBash(sb, "mkdir -p /home/user/t/sub && head -c 1000 /dev/urandom > /home/user/t/one && head -c 1000 /dev/urandom > /home/user/t/sub/two && head -c 1000 /dev/urandom > /home/user/t/three"), "bash");
    const fits = join(local, "fits");
    await sb.fs.download("/home/user/t", fits, { maxBytes: 3000 });
    expect(readFileSync(join(fits, "sub", "two")).length).toBe(1000);
    expect(readdirSync(fits).sort()).toEqual(["one", "sub", "three"]);

    // Into an existing directory the caller already keeps a file in: the tree lands in dst/t.
    const dst = join(local, "dst");
    mkdirSync(join(dst, "t"), { recursive: true });
    writeFileSync(join(dst, "t", "mine.txt"), "keep me");
    const err = await refusal(sb.fs.download("/home/user/t", dst, { maxBytes: 2999 }));
    expect(err.message).toMatch(/^downloading \/home\/user\/t would write more than maxBytes \(2999 bytes\): \/home\/user\/t\/\S+ is 1000 bytes after 2000 already; pass a larger \{ maxBytes \}/);
    // What it had written before the limit (two files, the sub directory) is gone; the caller's file is not.
    expect(readdirSync(join(dst, "t"))).toEqual(["mine.txt"]);
    expect(readFileSync(join(dst, "t", "mine.txt"), "utf8")).toBe("keep me");

    // A single file: exactly maxBytes is fine, one byte under is refused and nothing is created.
    await sb.fs.download("/home/user/t/one", join(local, "one"), { maxBytes: 1000 });
    expect(readFileSync(join(local, "one")).length).toBe(1000);
    await refusal(sb.fs.download("/home/user/t/three", join(local, "three"), { maxBytes: 999 }));
    expect(existsSync(join(local, "three"))).toBe(false);
    await expect(sb.fs.download("/home/user/t", join(local, "x"), { maxBytes: -1 })).rejects.toThrow(/maxBytes must be a non-negative integer/);
  });

  it("a file that grows past maxBytes while it is downloaded is cut off and removed", async () => {
    ok(await runBash(sb, "head -c 1000 /dev/zero > /home/user/growing"), "bash");
    await sb.spawn("bash", { args: ["-c", "while :; do head -c 1048576 /dev/zero; done >> /home/user/growing"], stdout: "null", stderr: "null" });
    await new Promise((r) => setTimeout(r, 300));
    const dst = join(local, "growing");
    const before = (await sb.fs.stat("/home/user/growing")).size;
    const max = before + 64 * 2 ** 20;
    const err = await refusal(sb.fs.download("/home/user/growing", dst, { maxBytes: max }));
    expect(err.message).toBe(`/home/user/growing grew past maxBytes (${max} bytes) while it was downloaded; pass a larger { maxBytes } to download it`);
    expect(existsSync(dst)).toBe(false);
    await runBash(sb, "pkill -x bash; rm -f /home/user/growing");
  });

  it("a failed download over an existing file leaves it as it was, and no temporary file beside it", async () => {
    // The failure: the sandbox killed while its 512 MiB file is on the way.
    const other = await Sandbox.create(daemon.opts);
    ok(await runBash(other, "head -c 512M /dev/zero > /home/user/big"), "bash");
    const dir = mkdtempSync(join(local, "over-"));
    const dst = join(dir, "kept.txt");
    writeFileSync(dst, "the caller's own content\n", { mode: 0o640 });
    const failed = other.fs.download("/home/user/big", dst).then(() => null, (e: unknown) => e);
    await new Promise((r) => setTimeout(r, 150));
    await other.kill();
    expect(await failed).toBeInstanceOf(Error);
    expect(statSync(dst).size).toBe(25); // (a failure diffing megabytes of zeros would say less)
    expect(readFileSync(dst, "utf8")).toBe("the caller's own content\n");
    expect(readdirSync(dir)).toEqual(["kept.txt"]);
    // and a download that succeeds replaces it, keeping its mode
    await sb.fs.writeTextFile("/home/user/small.txt", "new\n");
    await sb.fs.download("/home/user/small.txt", dst);
    expect(readFileSync(dst, "utf8")).toBe("new\n");
    expect(statSync(dst).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(["kept.txt"]);
  });

  it("replaces a file whose name is near NAME_MAX too (the temporary file's name is not made from it)", async () => {
    const dir = mkdtempSync(join(local, "long-"));
    const dst = join(dir, "n".repeat(250));
    writeFileSync(dst, "old\n", { mode: 0o640 });
    await sb.fs.writeTextFile("/home/user/long.txt", "new\n");
    await sb.fs.download("/home/user/long.txt", dst);
    expect(readFileSync(dst, "utf8")).toBe("new\n");
    expect(statSync(dst).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(["n".repeat(250)]);
  });
});

describe("a download into something that is not a regular file", () => {
  it("writes into a FIFO someone reads, in place, every byte (a pipe's 64 KiB is no limit)", async () => {
    await sb.fs.writeFile("/home/user/for-fifo.bin", new Uint8Array(3 << 20).fill(0x5a));
    const dir = mkdtempSync(join(local, "fifo-"));
    const fifo = join(dir, "pipe");
    execFileSync("mkfifo", [fifo]);
    const reader = spawn("sh", ["-c", `wc -c < ${fifo}`], { stdio: ["ignore", "pipe", "inherit"] });
    let counted = "";
    reader.stdout.on("data", (d) => (counted += d));
    const exited = new Promise((r) => reader.once("exit", r));
    await new Promise((r) => setTimeout(r, 200)); // the reader has the FIFO open
    await sb.fs.download("/home/user/for-fifo.bin", fifo);
    await exited;
    expect(counted.trim()).toBe(String(3 << 20));
    expect(readdirSync(dir)).toEqual(["pipe"]);
  });
});
