import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, InUseError, InvalidOptionError, Sandbox, VolumeNotFoundError } from "@sbx/client";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";

/**
 * Booting from a volume or snapshot (`root`, issue 15 item 3) against a real root-mode daemon.
 * The image is a small root file system made inside a sandbox from the host's own programs
 * (mini-root.sh: bash, coreutils, unshare, and the libraries they load).
 */

const TENANT_B = `tenant-b-${randomBytes(24).toString("base64url")}`;
let daemon: TestDaemon;
let A: { url: string; token: string };
const slug = (stem: string) => `${stem}-${randomBytes(3).toString("hex")}`;
const rejection = (p: Promise<unknown>) => p.then(() => new Error("resolved, expected a rejection"), (e: unknown) => e as Error);

/** Fills the volume mounted at /data with a minimal merged-/usr root file system (shared with the Python tests). */
const MAKE_ROOT = readFileSync(new URL("./mini-root.sh", import.meta.url), "utf8");

/** A new volume holding the minimal root, and a snapshot of it. */
async function makeRoot(client: Client, stem: string): Promise<{ volume: string; snapshot: string }> {
  const volume = slug(stem);
  await client.volumes.create({ slug: volume, capacity: "256MiB" });
  const sb = await Sandbox.create({ ...A, volumes: { "/data": volume } });
  const made = await (await sb.spawn("bash", { args: ["-c", MAKE_ROOT], stdout: "piped", stderr: "piped" })).output();
  if (!made.status.success) throw new Error(`making the root failed: ${made.stderrText}`);
  await sb.kill();
  const snapshot = `${volume}-s`;
  await until(() => client.volumes.snapshot(volume, { slug: snapshot }));
  return { volume, snapshot };
}

/** Retries while the volume is still held by a sandbox that is ending. */
async function until<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof InUseError) || i > 100) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const mounts = () => readFileSync("/proc/self/mountinfo", "utf8");

let client: Client;
let image: { volume: string; snapshot: string };

beforeAll(async () => {
  daemon = await startDaemon({ config: { tokens: [TENANT_B] }, args: ["--warm-pool", "0"] });
  A = daemon.opts;
  client = new Client(A);
  image = await makeRoot(client, "root");
}, 60_000);

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
});

describe("root: a snapshot", () => {
  it("boots from the snapshot's files, not the host's, with home and /tmp of its own", async () => {
    await using sb = await Sandbox.create({ ...A, root: image.snapshot });
    const out = await sb.sh`cat /etc/os-release; id -u; ls /usr/bin | wc -l 2>/dev/null || ls /usr/bin | grep -c .; test -e /usr/bin/node && echo host-usr || echo own-usr; test -e /etc/shadow && echo shadow || echo no-shadow; echo x > ~/f && cat ~/f; echo y > /tmp/t && cat /tmp/t; pwd`.text();
    const lines = out.trim().split("\n");
    expect(lines[0]).toBe("ID=sbx-mini");
    expect(lines[1]).toBe("1000");
    expect(lines).toContain("own-usr");
    expect(lines).toContain("no-shadow");
    expect(lines.slice(-3)).toEqual(["x", "y", "/home/sandbox"]);
  });

  it("gives each sandbox a private writable layer: writes never reach the snapshot or another sandbox", async () => {
    const a = await Sandbox.create({ ...A, root: image.snapshot });
    const b = await Sandbox.create({ ...A, root: image.snapshot });
    try {
      await a.sh`echo from-a > /var/scratch/seed; echo new > /var/scratch/made-by-a`.text();
      expect(await a.sh`cat /var/scratch/seed /var/scratch/made-by-a`.text()).toBe("from-a\nnew\n");
      expect(await b.sh`cat /var/scratch/seed; ls /var/scratch`.text()).toBe("from-image\nseed\n");
      // The image's own files stay the image's: not writable by the sandbox's user.
      const denied = await a.sh`echo x > /usr/bin/cat`.noThrow().stderr("piped");
      expect(denied.status.code).not.toBe(0);
      expect(denied.stderrText).toMatch(/Permission denied/);
    } finally {
      await a.kill();
      await b.kill();
    }
    await using c = await Sandbox.create({ ...A, root: image.snapshot });
    expect(await c.sh`cat /var/scratch/seed; ls /var/scratch`.text()).toBe("from-image\nseed\n");
  });

  it("counts the writable layer in the sandbox's disk cap", async () => {
    await using sb = await Sandbox.create({ ...A, root: image.snapshot, disk: "32MiB" });
    const r = await sb.sh`head -c 64000000 /dev/zero > /var/scratch/big`.noThrow().stderr("piped");
    expect(r.status.code).not.toBe(0);
    expect(r.stderrText).toMatch(/No space left on device/);
  });

  it("unmounts the layer when the sandbox ends, and the snapshot can then be deleted", async () => {
    const { volume, snapshot } = await makeRoot(client, "gone");
    const sb = await Sandbox.create({ ...A, root: snapshot });
    expect(mounts()).toContain(`${sb.id}-root`);
    await expect(client.snapshots.delete(snapshot)).rejects.toBeInstanceOf(InUseError);
    await sb.kill();
    await until(() => client.snapshots.delete(snapshot));
    expect(mounts()).not.toContain(`${sb.id}-root`);
    await client.volumes.delete(volume);
  });
});

describe("root: a volume", () => {
  it("is mounted read-write as /: what is written anywhere in it, home included, is there next time", async () => {
    const { volume } = await makeRoot(client, "persist");
    {
      await using sb = await Sandbox.create({ ...A, root: volume });
      await sb.sh`echo kept > /var/scratch/note; echo mine > ~/notes.txt; mkdir /opt-mine; echo top > /opt-mine/x`.text();
      await sb.kill();
    }
    await until(async () => {
      await using sb = await Sandbox.create({ ...A, root: volume });
      expect(await sb.sh`cat /var/scratch/note ~/notes.txt /opt-mine/x; cat /etc/os-release`.text()).toBe("kept\nmine\ntop\nID=sbx-mini\n");
    });
  });

  it("is one sandbox's at a time, and cannot also be mounted at a path", async () => {
    const { volume } = await makeRoot(client, "excl");
    const twice = await rejection(Sandbox.create({ ...A, root: volume, volumes: { "/data": volume } }));
    expect(twice).toBeInstanceOf(InUseError);
    expect(twice.message).toBe(`volume '${volume}' is named twice: a volume is mounted read-write at one path of one sandbox at a time`);
    await using sb = await until(() => Sandbox.create({ ...A, root: volume }));
    const second = await rejection(Sandbox.create({ ...A, root: volume }));
    expect(second).toBeInstanceOf(InUseError);
    expect(second.message).toBe(`cannot mount volume '${volume}': it is mounted by ${sb.id}`);
  });
});

describe("root: refusals", () => {
  it("an unknown root, or another token's, is VolumeNotFound and starts nothing", async () => {
    const unknown = await rejection(Sandbox.create({ ...A, root: "no-such-image" }));
    expect(unknown).toBeInstanceOf(VolumeNotFoundError);
    expect(unknown.message).toBe("no volume or snapshot 'no-such-image'");
    const theirs = await rejection(Sandbox.create({ url: daemon.url, token: TENANT_B, root: image.snapshot }));
    expect(theirs).toBeInstanceOf(VolumeNotFoundError);
    expect(theirs.message).toBe(`no volume or snapshot '${image.snapshot}'`);
  });

  it("a root whose tree leads a mount point through a symbolic link is refused, naming the path", async () => {
    const evil = slug("evil");
    await client.volumes.create({ slug: evil, capacity: "32MiB" });
    {
      // /etc pointing at the host's /etc would have bwrap create its mount points there as the sandbox's uid.
      await using sb = await Sandbox.create({ ...A, volumes: { "/data": evil } });
      await sb.sh`ln -s /etc /data/etc`.text();
      await sb.kill();
    }
    const err = await rejection(until(async () => void (await Sandbox.create({ ...A, root: evil }))));
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.message).toBe(`params.root: volume '${evil}' cannot be booted: /etc is a symbolic link, where sbx mounts /etc`);
    // Nothing was left mounted for it, and the volume is free again.
    await until(() => client.volumes.delete(evil));
  });
});

describe("root: the same isolation as any sandbox", () => {
  it("keeps seccomp, the memory cap, the egress proxy and the daemon's CA", async () => {
    await using sb = await Sandbox.create({ ...A, root: image.snapshot, memory: "128MiB" });
    const userns = await sb.sh`unshare -U true`.noThrow().stderr("piped");
    expect(userns.status.code).not.toBe(0);
    expect(userns.stderrText).toMatch(/Operation not permitted/);
    // tail looks for the last line of an endless one, holding it all.
    const hog = await (await sb.spawn("tail", { args: ["/dev/zero"], stdout: "null" })).status;
    expect(hog).toMatchObject({ success: false, oom: true });
    const env = await sb.sh`echo $HTTPS_PROXY; grep -c BEGIN /etc/ssl/certs/ca-certificates.crt; tail -c 200 /etc/ssl/certs/ca-certificates.crt | grep -c END`.text();
    const [proxy, certs] = env.trim().split("\n");
    expect(proxy).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Number(certs)).toBeGreaterThan(1);
    // The bundle bound over the image's path is the one with the daemon's CA in it.
    const ca = await sb.sh`cat /.sbx/ca.pem`.text();
    expect(await sb.sh`cat /etc/ssl/certs/ca-certificates.crt`.text()).toContain(ca.trim());
    // sbx's own files are read-only, whatever the root.
    expect((await sb.sh`touch /.sbx/x`.noThrow()).status.code).not.toBe(0);
  });
});
