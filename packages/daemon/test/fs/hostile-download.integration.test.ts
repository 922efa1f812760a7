import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResourceLimitError, RpcError } from "@sbx/client";
import { useSandbox } from "../helpers/fixtures.js";
import { ok, runBash } from "../helpers/bash.js";

/**
 * Resilience item 11: a download onto the caller's machine follows nobody's lead but the
 * caller's. The sandbox is hostile: it plants symlinks to host files, FIFOs fed forever, and
 * files that grow while they are read.
 */

const { sb } = useSandbox({ daemon: { args: ["--warm-pool", "0"] }, sandbox: { timeout: "10m" } });
let local: string;

beforeAll(() => {
  local = mkdtempSync(join(tmpdir(), "sbx-download-"));
});

afterAll(() => {
  rmSync(local, { recursive: true, force: true });
});

describe("downloads never create a link that leads out of their target", () => {
  it("a single symlink is followed in the sandbox and its content copied, never recreated as a link", async () => {
    ok(await runBash(sb, "echo inside > /home/user/real.txt; ln -s /home/user/real.txt /home/user/link.txt; ln -s /etc/shadow /home/user/shadow; ln -s /etc/os-release /home/user/os-release"), "bash");
    const dst = join(local, "link.txt");
    await sb.fs.download("/home/user/link.txt", dst);
    expect(lstatSync(dst).isSymbolicLink()).toBe(false);
    expect(readFileSync(dst, "utf8")).toBe("inside\n");
    // A link to a host path: what it names inside the sandbox (here nothing), never the host's file.
    const err = await sb.fs.download("/home/user/shadow", join(local, "shadow")).catch((e: unknown) => e);
    expect((err as RpcError).errno).toBe("ENOENT");
    expect(existsSync(join(local, "shadow"))).toBe(false);
    // A symlink already standing at the local path is not written through (ELOOP), and its target is untouched.
    const victim = join(local, "victim.txt");
    writeFileSync(victim, "keep me");
    symlinkSync(victim, join(local, "trap"));
    await expect(sb.fs.download("/home/user/real.txt", join(local, "trap"))).rejects.toMatchObject({ code: "ELOOP" });
    expect(readFileSync(victim, "utf8")).toBe("keep me");
    // One that names a file the sandbox does have (bound read-only from the host): its content.
    await sb.fs.download("/home/user/os-release", join(local, "os-release"));
    expect(lstatSync(join(local, "os-release")).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(local, "os-release"), "utf8")).toBe(readFileSync("/etc/os-release", "utf8"));
  });

  it("in a tree: links inside it are kept (absolute ones made relative), a link out of it refuses the download and leaves nothing, or is skipped on request", async () => {
    ok(
      await runBash(
        sb,
        "mkdir -p /home/user/t/sub && echo a > /home/user/t/sub/a.txt && cd /home/user/t && ln -s sub/a.txt rel && ln -s /home/user/t/sub/a.txt abs && ln -s ../../t/sub/a.txt up && ln -s /etc/shadow out",
      ),
      "bash",
    );
    const refused = join(local, "refused");
    const err = await sb.fs.download("/home/user/t", refused).catch((e: unknown) => e);
    expect((err as Error).message).toBe("refusing tar entry 'out': is a symlink to '/etc/shadow', outside what is being unpacked; a download never creates a link that leads out of its target (pass { symlinks: \"skip\" } to leave such links out)");
    expect(existsSync(refused)).toBe(false);
    const skipped = join(local, "skipped");
    await sb.fs.download("/home/user/t", skipped, { symlinks: "skip" });
    expect(readdirSync(skipped).sort()).toEqual(["abs", "rel", "sub"]);
    expect(readlinkSync(join(skipped, "rel"))).toBe("sub/a.txt");
    expect(readlinkSync(join(skipped, "abs"))).toBe("sub/a.txt");
    expect(readFileSync(join(skipped, "abs"), "utf8")).toBe("a\n");
    // `up` climbs above the tree (../../t) before it comes back: refused like any link out of it.
    expect(existsSync(join(skipped, "up"))).toBe(false);
  });

  it("a link that climbs out through another link is caught: only ../ first, then names", async () => {
    ok(await runBash(sb, "mkdir -p /home/user/c && cd /home/user/c && ln -s . self && ln -s self/.. sneaky"), "bash");
    const err = await sb.fs.download("/home/user/c", join(local, "c")).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^refusing tar entry 'sneaky': is a symlink to 'self\/\.\.'/);
  });
});

describe("special files and endless reads", () => {
  it("a FIFO fed forever is refused (EINVAL) by readFile, readFileStream and download, without waiting for a writer", async () => {
    ok(await runBash(sb, "mkfifo /home/user/fifo /home/user/idle"), "mkfifo");
    // A writer that feeds one of them forever (the other has none at all).
    await sb.spawn("sh", { args: ["-c", "cat /dev/zero > /home/user/fifo"], stdout: "null", stderr: "null" });
    for (const call of [() => sb.fs.readFile("/home/user/fifo"), () => sb.fs.readFileStream("/home/user/idle"), () => sb.fs.download("/home/user/fifo", join(local, "fifo"))]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcError);
      expect((err as RpcError).errno).toBe("EINVAL");
      expect((err as Error).message).toMatch(/not a regular file \(a FIFO, device or socket\)/);
    }
    expect(existsSync(join(local, "fifo"))).toBe(false);
    await expect(sb.fs.readFile("/dev/zero")).rejects.toMatchObject({ errno: "EINVAL" });
  });

  it("readFile holds at most maxBytes (default 256 MiB), even of a file that keeps growing", async () => {
    ok(await runBash(sb, "head -c 3000000 /dev/zero > /home/user/three"), "bash");
    const err = await sb.fs.readFile("/home/user/three", { maxBytes: 1_000_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceLimitError);
    expect((err as Error).message).toBe("/home/user/three holds more than maxBytes (1000000 bytes); read it with readFileStream, or pass a larger { maxBytes }");
    expect((await sb.fs.readTextFile("/home/user/three", { maxBytes: 3_000_000 })).length).toBe(3_000_000);
    // A file that grows while it is read is cut at the limit too.
    await sb.spawn("bash", { args: ["-c", "while :; do head -c 1048576 /dev/zero; done > /home/user/growing"], stdout: "null", stderr: "null" });
    await new Promise((r) => setTimeout(r, 300));
    await expect(sb.fs.readFile("/home/user/growing", { maxBytes: 64 << 20 })).rejects.toBeInstanceOf(ResourceLimitError);
    await runBash(sb, "pkill -x bash; rm -f /home/user/growing");
  });
});
