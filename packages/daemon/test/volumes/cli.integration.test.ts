import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, startDaemon, type TestDaemon } from "../helpers/daemon.js";

/** `sbx volume ...`, `sbx snapshot ...` and `--volume` of run (issue 15), against a real daemon. */

const execFileP = promisify(execFile);
let daemon: TestDaemon;

beforeAll(async () => {
  daemon = await startDaemon({ args: ["--warm-pool", "0"] });
});

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
});

async function sbx(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token };
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err: any) {
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("sbx volume / sbx snapshot", () => {
  it("creates, mounts with run --volume, snapshots, lists and removes; refusals are one clear line", async () => {
    const made = await sbx("volume", "create", "cli-vol", "--capacity", "32MiB");
    expect(made).toMatchObject({ code: 0, stderr: "" });
    expect(made.stdout).toMatch(/^vol_\w{24}\n$/);
    expect((await sbx("run", "--volume", "/data=cli-vol", "--", "sh", "-c", "echo from-cli > /data/f")).code).toBe(0);
    expect((await sbx("run", "--volume", "/data=cli-vol", "--", "cat", "/data/f")).stdout).toBe("from-cli\n");

    const ls = await sbx("volume", "ls");
    expect(ls.stdout).toMatch(/^ID\s+SLUG\s+CAPACITY\s+USED\s+ON DISK\s+MOUNTED BY\n/);
    expect(ls.stdout).toMatch(/vol_\w{24}\s+cli-vol\s+32\.0 MiB\s+[\d.]+ MiB\s+[\d.]+ MiB\s+-\n/);
    const json = JSON.parse((await sbx("volume", "get", "cli-vol", "--json")).stdout);
    expect(json).toMatchObject({ slug: "cli-vol", capacity: 32 * 2 ** 20, mountedBy: null });

    expect((await sbx("volume", "resize", "cli-vol", "48MiB")).stdout).toBe(`cli-vol: ${48 * 2 ** 20} bytes\n`);
    expect((await sbx("volume", "snapshot", "cli-vol", "cli-snap")).stdout).toMatch(/^snap_\w{24}\n$/);
    expect((await sbx("snapshot", "ls")).stdout).toMatch(/snap_\w{24}\s+cli-snap\s+cli-vol\s/);
    expect((await sbx("run", "--volume", "/ref=cli-snap", "--", "cat", "/ref/f")).stdout).toBe("from-cli\n");

    const bad = await sbx("run", "--volume", "/etc=cli-vol", "--", "true");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/params\.volumes\["\/etc"\]: '\/etc' is \/etc, which the sandbox's isolation is built from/);
    const malformed = await sbx("run", "--volume", "cli-vol", "--", "true");
    expect(malformed.stderr).toMatch(/--volume expects PATH=VOLUME/);
    const missing = await sbx("volume", "rm", "no-such");
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/no volume 'no-such'/);

    expect((await sbx("snapshot", "rm", "cli-snap")).code).toBe(0);
    expect((await sbx("volume", "rm", "cli-vol")).code).toBe(0);
    expect((await sbx("volume", "ls", "--json")).stdout).toBe("[]\n");
  });
});
