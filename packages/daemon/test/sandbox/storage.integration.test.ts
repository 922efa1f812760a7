import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { PreparedStorage, SandboxStorage } from "../../src/sandbox/storage.js";
import { mountSource } from "../../src/util/mountinfo.js";
import { makeImage, mountImage, unmountImage } from "../../src/volumes/image.js";
import { useSandbox } from "../helpers/fixtures.js";

/**
 * A sandbox's storage (root mode) is an ext4 image on a loop device that does direct I/O: the
 * image is read and written without the host's page cache, so the sandbox's files are cached
 * once (inside, charged to the sandbox), not twice, and a sync inside writes them once.
 */

const { sb } = useSandbox();
const dio = (device: string) => readFileSync(`/sys/block/${device.replace("/dev/", "")}/loop/dio`, "utf8").trim();

describe("sandbox storage", () => {
  it("is a loop device doing direct I/O", async () => {
    // The sandbox's own mount table names the device behind its home.
    const device = mountSource("/home/sandbox", await sb.fs.readTextFile("/proc/self/mountinfo"));
    expect(device).toMatch(/^\/dev\/loop\d+$/);
    // A storage made on the create path (the stock had none) turns to direct I/O as the sandbox starts.
    await vi.waitFor(() => expect(dio(device!)).toBe("1"), { timeout: 5000 });
    // And a durable write through it lands whole.
    const out = await sb.sh`dd if=/dev/zero of=/home/sandbox/f bs=1M count=64 conv=fdatasync status=none && stat -c %s /home/sandbox/f`.text();
    expect(out).toBe(`${64 << 20}\n`);
  });

  it("made on the create path, turns to direct I/O just after it is handed out", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sbx-storage-create-"));
    const storage = await SandboxStorage.create(join(dir, "s"), 32 << 20, 4_000_000);
    try {
      const device = mountSource(storage.root);
      expect(device).toMatch(/^\/dev\/loop\d+$/);
      await vi.waitFor(() => expect(dio(device!)).toBe("1"), { timeout: 5000 });
    } finally {
      await storage.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a volume mounted read-write turns to direct I/O just after; a snapshot (read-only) keeps the host's cache", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sbx-storage-volume-"));
    const [rw, ro] = [join(dir, "rw"), join(dir, "ro")];
    try {
      await makeImage(join(dir, "v.img"), 32 << 20);
      execFileSync("cp", ["--sparse=always", join(dir, "v.img"), join(dir, "s.img")]);
      await mountImage(join(dir, "v.img"), rw, false);
      await mountImage(join(dir, "s.img"), ro, true);
      await vi.waitFor(() => expect(dio(mountSource(rw)!)).toBe("1"), { timeout: 5000 });
      expect(dio(mountSource(ro)!)).toBe("0");
    } finally {
      await unmountImage(rw);
      await unmountImage(ro);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const scratch = mkdtempSync(join(tmpdir(), "sbx-storage-ramfs-"));
  afterAll(() => {
    // Mounted only if its test got that far.
    if (mountSource(scratch)) execFileSync("umount", ["--lazy", scratch]);
    rmSync(scratch, { recursive: true, force: true });
  });

  it("on a host directory that cannot do direct I/O (a ramfs), still mounts, buffered", async () => {
    execFileSync("mount", ["-t", "ramfs", "ramfs", scratch]);
    const storage = await PreparedStorage.prepare(join(scratch, "s"), 32 << 20);
    try {
      const device = mountSource(storage.root);
      expect(device).toMatch(/^\/dev\/loop\d+$/);
      expect(dio(device!)).toBe("0");
      execFileSync("dd", ["if=/dev/zero", `of=${join(storage.root, "home", "f")}`, "bs=1M", "count=8", "conv=fdatasync", "status=none"]);
      expect(readFileSync(join(storage.root, "home", "f")).length).toBe(8 << 20);
    } finally {
      await storage.destroy();
    }
  });
});
