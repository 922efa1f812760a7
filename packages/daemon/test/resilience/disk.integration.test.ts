import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResourceLimitError, RpcError, Sandbox } from "@sbx/client";
import { startDaemon, removeStateDir } from "../helpers/daemon.js";
import { runBash } from "../helpers/bash.js";
import { DiskBudget } from "../../src/sandbox/disk-budget.js";

/**
 * Resilience item 9: sandboxes' disks are sparse ext4 images on the state dir's file system.
 * Here that file system is a small one of the test's own (300 MB), so filling it is cheap:
 * caps beyond what is free are refused or reported, and a write the disk cannot keep fails
 * with an error instead of being acknowledged and lost.
 */

const MIB = 1 << 20;
let host: string;
let image: string;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), "sbx-smallfs-"));
  image = `${dir}.img`;
  host = dir;
  execFileSync("fallocate", ["-l", String(300 * MIB), image]);
  execFileSync("mkfs.ext4", ["-q", "-F", image]);
  execFileSync("mount", ["-o", "loop", image, host]);
  execFileSync("chmod", ["755", host]);
});

afterAll(async () => {
  for (const d of ["reserve", "thin"]) await removeStateDir(join(host, d)).catch(() => {});
  execFileSync("umount", ["--lazy", host]);
  rmSync(image, { force: true });
  rmSync(host, { recursive: true, force: true });
});

describe("disk caps against the host's free space", () => {
  it("unreserved caps: overcommit is told to the caller, refused past diskOvercommit; a write the full disk cannot keep is an error, never acknowledged", async () => {
    await using daemon = await startDaemon({ stateDir: join(host, "thin"), config: { diskMinFree: "16MiB", diskOvercommit: 4 }, args: ["--warm-pool", "0"] });
    expect(daemon.logs()).toMatch(/warn disk: sandboxes' caps are not reserved: together they may promise up to 4× the free space of \S+ \(\d+(\.\d)? MiB free; diskOvercommit\)/);
    const a = await Sandbox.create({ ...daemon.opts, disk: "400MiB" });
    expect(a.warnings).toEqual([expect.stringMatching(/^disk: the 400 MiB cap is not reserved: the host disk holding sandboxes has \d+(\.\d)? MiB free for 400 MiB promised to this and 0 other sandboxes; if it fills, writes fail with an I\/O error$/)]);
    const b = await Sandbox.create({ ...daemon.opts, disk: "400MiB" });
    const refused = await Sandbox.create({ ...daemon.opts, disk: "1GiB" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ResourceLimitError);
    expect((refused as Error).message).toMatch(/^disk: sandboxes would be promised 1\.8 GiB on \S+, more than 4× its \d+(\.\d)? MiB free \(diskOvercommit\); ask for a smaller disk or free space$/);

    // A fills the host disk through its sparse image; its own fsync reports the failure.
    const fill = await runBash(a, "dd if=/dev/urandom of=/home/user/big bs=1M count=350 conv=fsync 2>&1; echo rc=$?");
    expect(fill.out).toMatch(/rc=1\n$/);
    // B's write cannot reach the disk either: writeFile says so instead of acknowledging it.
    const err = await b.fs.writeFile("/home/user/precious", new Uint8Array(8 * MIB).fill(7)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).errno).toMatch(/^(EIO|ENOSPC)$/);
    // With the disk full, no new sandbox is started.
    const full = await Sandbox.create({ ...daemon.opts, disk: "10MiB" }).catch((e: unknown) => e);
    expect(full).toBeInstanceOf(ResourceLimitError);
    expect((full as Error).message).toMatch(/has \d+(\.\d)? (KiB|MiB|B) free, below the 16 MiB the daemon keeps free \(diskMinFree\): no new sandbox until space is freed$/);
    await a.kill();
    await b.kill();
  });

  it("diskReserve: each cap is allocated up front, and one that does not fit is refused", async () => {
    await using daemon = await startDaemon({ stateDir: join(host, "reserve"), config: { diskReserve: true, diskMinFree: "16MiB" }, args: ["--warm-pool", "0"] });
    expect(daemon.logs()).toMatch(/info disk: every sandbox's cap is reserved in full on \S+ \(\d+(\.\d)? MiB free; diskReserve\)/);
    const sb = await Sandbox.create({ ...daemon.opts, disk: "100MiB" });
    expect(sb.warnings).toEqual([]);
    expect(statSync(join(daemon.stateDir, "mnt", `${sb.id}.img`)).blocks * 512).toBeGreaterThanOrEqual(100 * MIB);
    const big = await Sandbox.create({ ...daemon.opts, disk: "1GiB" }).catch((e: unknown) => e);
    expect(big).toBeInstanceOf(ResourceLimitError);
    expect((big as Error).message).toMatch(/^disk: a 1 GiB cap cannot be reserved: \d+(\.\d)? MiB of \S+ are free to reserve \(diskReserve\); ask for a smaller disk$/);
    await sb.kill();
  });

  it("the daemon logs once when the free space drops below diskMinFree, and once when it is back", async () => {
    const dir = join(host, "watch");
    mkdirSync(dir, { recursive: true });
    const lines: string[] = [];
    const log = { info: (m: string) => lines.push(`info ${m}`), warn: (m: string) => lines.push(`warn ${m}`), error: (m: string) => lines.push(`error ${m}`) };
    const budget = new DiskBudget(dir, { reserve: false, overcommit: 1, minFreeBytes: 100 * MIB }, log);
    budget.watch(20);
    try {
      const filler = join(dir, "filler");
      writeFileSync(filler, Buffer.alloc(250 * MIB));
      await new Promise((r) => setTimeout(r, 200));
      rmSync(filler);
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      budget.stop();
    }
    expect(lines.filter((l) => l.startsWith("error disk:"))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith("info disk:") && l.endsWith("free again"))).toHaveLength(1);
  });
});
