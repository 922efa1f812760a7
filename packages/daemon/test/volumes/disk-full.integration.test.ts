import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, ResourceLimitError, Sandbox } from "@sbx/client";
import { removeStateDir, startDaemon, type TestDaemon } from "../helpers/daemon.js";

/**
 * The host disk filling up under a volume call (issue 15: "disk full → clear error and nothing
 * half-written"): the daemon's state dir sits on a 96 MiB tmpfs, so copying a volume with 40 MiB
 * of data twice more cannot fit.
 */

let dir: string;
let daemon: TestDaemon;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sbx-diskfull-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=96m,mode=0755", "tmpfs", dir]);
  daemon = await startDaemon({ stateDir: join(dir, "state"), config: { diskMinFree: 0 }, args: ["--warm-pool", "0"] });
});

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  await removeStateDir(join(dir, "state"));
  execFileSync("umount", ["--lazy", dir]);
  rmSync(dir, { recursive: true, force: true });
});

describe("host disk full", () => {
  it("a snapshot or volume copy that cannot fit fails clearly and leaves no record or image behind; the source is intact", async () => {
    const client = new Client(daemon.opts);
    await client.volumes.create({ slug: "full-src", capacity: "64MiB" });
    {
      await using sb = await Sandbox.create({ ...daemon.opts, disk: "16MiB", volumes: { "/data": "full-src" } });
      await sb.sh`head -c 40000000 /dev/urandom > /data/blob && sha256sum /data/blob > /data/sum`;
      await sb.kill();
    }
    const files = () => readdirSync(join(dir, "state", "volumes")).filter((n) => n !== "mnt").sort();
    const before = files();
    const first = await client.volumes.snapshot("full-src", { slug: "full-one" }).then(
      (s) => s,
      (e: unknown) => e as Error,
    );
    // One copy may fit (96 MiB less the source's 40); the second cannot.
    const second = await client.volumes.snapshot("full-src", { slug: "full-two" }).then(
      (s) => s,
      (e: unknown) => e as Error,
    );
    const failed = [first, second].filter((r): r is Error => r instanceof Error);
    expect(failed.length).toBeGreaterThanOrEqual(1);
    for (const err of failed) {
      expect(err).toBeInstanceOf(ResourceLimitError);
      expect(err.message).toBe("could not snapshot volume 'full-src': the daemon host's disk holding volumes is full (No space left on device); nothing was kept");
    }
    const made = [first, second].filter((r) => !(r instanceof Error)) as Array<{ id: string }>;
    expect(files()).toEqual([...before, ...made.flatMap((s) => [`${s.id}.img`, `${s.id}.json`])].sort());
    expect((await client.snapshots.list()).items.map((s) => s.id)).toEqual(made.map((s) => s.id));

    // The source volume still reads back whole.
    await using sb = await Sandbox.create({ ...daemon.opts, disk: "16MiB", volumes: { "/data": "full-src" } });
    expect(await sb.sh`sha256sum -c /data/sum >/dev/null && echo intact`.text()).toBe("intact\n");
  });
});
