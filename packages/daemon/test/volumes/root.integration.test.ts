import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, InUseError, InvalidOptionError, Sandbox, UnsupportedError, VolumeNotFoundError } from "@sbx/client";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { makeRoot, ROOT_CAPS_HEX, slug, untilFree } from "../helpers/images.js";

/**
 * Booting from a volume or snapshot (`root`, issue 15 item 3) against a real root-mode daemon.
 * The image is a small root file system made inside a sandbox from the host's own programs
 * (helpers/images.ts).
 */

const TENANT_B = `tenant-b-${randomBytes(24).toString("base64url")}`;
let daemon: TestDaemon;
let A: { url: string; token: string };
const rejection = (p: Promise<unknown>) => p.then(() => new Error("resolved, expected a rejection"), (e: unknown) => e as Error);
const until = untilFree;

const mounts = () => readFileSync("/proc/self/mountinfo", "utf8");

let client: Client;
let image: { volume: string; snapshot: string };

beforeAll(async () => {
  daemon = await startDaemon({ config: { tokens: [TENANT_B] }, args: ["--warm-pool", "0"] });
  A = daemon.opts;
  client = new Client(A);
  image = await makeRoot(client, A, "root");
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
    const { volume, snapshot } = await makeRoot(client, A, "gone");
    const sb = await Sandbox.create({ ...A, root: snapshot });
    expect(mounts()).toContain(`${sb.id}-root`);
    // The overlay trusts none of the xattrs a hostile snapshot could forge, and lets no set-uid program or device act.
    const overlay = mounts().split("\n").find((l) => l.split(" ")[4]?.endsWith(`${sb.id}-root`))!;
    expect(overlay.split(" ")[5]).toMatch(/(^|,)nosuid(,|$)/);
    expect(overlay.split(" ")[5]).toMatch(/(^|,)nodev(,|$)/);
    const superOptions = overlay.split(" - ")[1]!.split(" ")[2]!.split(",");
    expect(superOptions).toContain("redirect_dir=nofollow");
    // The kernel shows these only when they differ from off.
    expect(superOptions.filter((o) => /^(metacopy|index|xino)=/.test(o))).toEqual([]);
    await expect(client.snapshots.delete(snapshot)).rejects.toBeInstanceOf(InUseError);
    await sb.kill();
    await until(() => client.snapshots.delete(snapshot));
    expect(mounts()).not.toContain(`${sb.id}-root`);
    await client.volumes.delete(volume);
  });
});

describe("root: a volume", () => {
  it("is mounted read-write as /: what is written anywhere in it, home included, is there next time", async () => {
    const { volume } = await makeRoot(client, A, "persist");
    {
      await using sb = await Sandbox.create({ ...A, root: volume });
      await sb.sh`echo kept > /var/scratch/note; echo mine > ~/notes.txt`.text();
      await sb.sh`mkdir /opt-mine; echo top > /opt-mine/x`.sudo();
      await sb.kill();
    }
    await until(async () => {
      await using sb = await Sandbox.create({ ...A, root: volume });
      expect(await sb.sh`cat /var/scratch/note ~/notes.txt /opt-mine/x; cat /etc/os-release`.text()).toBe("kept\nmine\ntop\nID=sbx-mini\n");
    });
  });

  it("is one sandbox's at a time, and cannot also be mounted at a path", async () => {
    const { volume } = await makeRoot(client, A, "excl");
    const twice = await rejection(Sandbox.create({ ...A, root: volume, volumes: { "/data": volume } }));
    expect(twice).toBeInstanceOf(InUseError);
    expect(twice.message).toBe(`volume '${volume}' is named twice: a volume is mounted read-write at one path of one sandbox at a time`);
    await using sb = await until(() => Sandbox.create({ ...A, root: volume }));
    const second = await rejection(Sandbox.create({ ...A, root: volume }));
    expect(second).toBeInstanceOf(InUseError);
    expect(second.message).toBe(`cannot mount volume '${volume}': it is mounted by ${sb.id}`);
  });
});

describe("root: many at once", () => {
  it("sandboxes booting one snapshot at the same moment share its one mount (the first mounts it, the others wait)", async () => {
    const { snapshot } = await makeRoot(client, A, "burst");
    const boxes = await Promise.all(Array.from({ length: 5 }, () => Sandbox.create({ ...A, root: snapshot })));
    try {
      expect(await Promise.all(boxes.map((sb) => sb.sh`cat /etc/os-release`.text()))).toEqual(Array(5).fill("ID=sbx-mini\n"));
      expect((await client.snapshots.get(snapshot))!.usedBy.sort()).toEqual(boxes.map((sb) => sb.id).sort());
    } finally {
      await Promise.all(boxes.map((sb) => sb.kill()));
    }
  });
});

describe("root: concurrent writers", () => {
  it("two creates racing to boot one volume: exactly one gets it, the other is refused clearly", async () => {
    const { volume } = await makeRoot(client, A, "race");
    const results = await untilFree(() => Promise.allSettled([Sandbox.create({ ...A, root: volume }), Sandbox.create({ ...A, root: volume })]).then((r) => {
      // Both refused because the maker's sandbox is still ending: try again.
      if (r.every((x) => x.status === "rejected" && /still held by a sandbox that is ending/.test(String(x.reason)))) throw r[0]!.status === "rejected" ? r[0]!.reason : new Error("unreachable");
      return r;
    }));
    const won = results.filter((r): r is PromiseFulfilledResult<Sandbox> => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect([won.length, lost.length]).toEqual([1, 1]);
    expect(lost[0]!.reason).toBeInstanceOf(InUseError);
    expect(String(lost[0]!.reason.message)).toMatch(new RegExp(`cannot mount volume '${volume}': it is (reserved by a sandbox being created|mounted by sbx_)`));
    await won[0]!.value.kill();
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

/** Host uids (real, effective, saved, fs) of the first host process whose command line holds `marker` (waiting a moment for its exec). */
async function hostUidsOf(marker: string): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    const found = findUids(marker);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no host process with ${marker} in its command line`);
}

function findUids(marker: string): number[] | null {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").includes(marker)) continue;
      return /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${entry}/status`, "utf8"))![1]!.trim().split(/\s+/).map(Number);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

describe("sudo: uid 0 of the sandbox's own user namespace", () => {
  it("runs as root inside, over the image's root files, with a small capability set; the user stays without any", async () => {
    await using sb = await Sandbox.create({ ...A, root: image.snapshot });
    const root = await (await sb.spawn("bash", { args: ["-c", "id -u; echo $HOME $USER; grep -E '^Cap(Eff|Prm|Bnd)|^NoNewPrivs|^Seccomp:' /proc/self/status; mkdir /srv-root && echo secret > /srv-root/f && chmod 700 /srv-root"], sudo: true })).output();
    expect(root.status.success).toBe(true);
    const lines = root.stdoutText!.trim().split("\n");
    expect(lines.slice(0, 2)).toEqual(["0", "/root root"]);
    const status = Object.fromEntries(lines.slice(2).map((l) => l.split(/:\s+/)));
    expect(status).toEqual({ CapPrm: ROOT_CAPS_HEX, CapEff: ROOT_CAPS_HEX, CapBnd: ROOT_CAPS_HEX, NoNewPrivs: "1", Seccomp: "2" });

    const user = await sb.sh`id -u; grep -E '^Cap(Eff|Prm)' /proc/self/status; cat /srv-root/f`.noThrow().stderr("piped");
    expect(user.stdoutText).toBe("1000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n");
    expect(user.stderrText).toMatch(/Permission denied/);
    // Deno's spelling: .sudo() on the sh chain.
    expect(await sb.sh`id -un 2>/dev/null || id -u`.sudo().text()).toMatch(/^(root|0)\n$/);
  });

  it("writes into the image's system directories go to the sandbox's own layer, as apt-get would", async () => {
    {
      await using sb = await Sandbox.create({ ...A, root: image.snapshot });
      const denied = await sb.sh`cp /usr/bin/cat /usr/bin/cat2`.noThrow().stderr("piped");
      expect(denied.stderrText).toMatch(/Permission denied/);
      await sb.sh`cp /usr/bin/cat /usr/bin/cat2 && chown 0:0 /usr/bin/cat2 && mkdir -p /var/lib/pkg && echo installed > /var/lib/pkg/status`.sudo();
      expect(await sb.sh`cat2 /var/lib/pkg/status; stat -c '%u %g' /usr/bin/cat2`.text()).toBe("installed\n0 0\n");
    }
    await using fresh = await Sandbox.create({ ...A, root: image.snapshot });
    expect((await fresh.sh`test -e /usr/bin/cat2 || test -e /var/lib/pkg`.noThrow()).status.code).toBe(1);
  });

  it("is an unprivileged host uid of the sandbox's own block, never the host's root", async () => {
    await using sb = await Sandbox.create({ ...A, root: image.snapshot });
    const marker = `sbx-sudo-${randomBytes(4).toString("hex")}`;
    // The marker is bash's $0: it shows in the command line.
    const asRoot = await sb.spawn("bash", { args: ["-c", "sleep 30; true", marker], sudo: true });
    const asUser = await sb.spawn("bash", { args: ["-c", "sleep 30; true", `${marker}-user`] });
    const rootUids = await hostUidsOf(marker);
    const userUids = await hostUidsOf(`${marker}-user`);
    expect(new Set(rootUids).size).toBe(1);
    expect(rootUids[0]).toBeGreaterThanOrEqual(200000);
    expect(userUids).toEqual(rootUids.map((u) => u + 1000));
    // Not the block of any other sandbox: a second one gets another.
    await using other = await Sandbox.create({ ...A, root: image.snapshot });
    const otherMarker = `${marker}-other`;
    const theirs = await other.spawn("bash", { args: ["-c", "sleep 30; true", otherMarker], sudo: true });
    expect(Math.abs((await hostUidsOf(otherMarker))[0]! - rootUids[0]!)).toBeGreaterThanOrEqual(65536);
    for (const p of [asRoot, asUser, theirs]) await p.kill("SIGKILL");
  });

  it("cannot signal the supervisor away, reach its channel or memory, or see the host's processes", async () => {
    await using sb = await Sandbox.create({ ...A, root: image.snapshot });
    // The supervisor is not dumpable: its /proc files need CAP_SYS_PTRACE, which root here lacks.
    const probes = await sb.sh`readlink -v /proc/1/fd/0; cat /proc/1/environ; head -c 1 /proc/1/mem; : > /proc/1/fd/1; cat /proc/1/fd/0`.sudo().noThrow().stderr("piped");
    expect(probes.stdoutText).toBe("");
    expect(probes.stderrText!.trim().split("\n").map((l) => /Permission denied/.test(l))).toEqual([true, true, true, true, true]);
    await sb.sh`kill -9 1; kill -TERM 1; ls /proc | grep -E '^[0-9]+$' | wc -l`.sudo().noThrow();
    expect(await sb.sh`echo alive`.sudo().text()).toBe("alive\n");
    const pids = (await sb.sh`ls /proc | grep -cE '^[0-9]+$'`.sudo().text()).trim();
    expect(Number(pids)).toBeLessThan(10);
  });

  it("is refused in a sandbox that was not booted from an image, before anything runs", async () => {
    await using sb = await Sandbox.create(A);
    const err = await rejection(sb.spawn("id", { sudo: true }));
    expect(err).toBeInstanceOf(UnsupportedError);
    expect(err.message).toBe("sudo: this sandbox has no root to run as; only a sandbox booted from an image (create it with root) has one");
  });
});

describe("the warm pool of images (config imageWarmPool)", () => {
  let pooled: TestDaemon;
  beforeAll(async () => {
    pooled = await startDaemon({ config: { imageWarmPool: 1 }, args: ["--warm-pool", "0"] });
  });
  afterAll(async () => {
    await pooled?.[Symbol.asyncDispose]();
  });

  /** Waits until the daemon has booted a sandbox ahead from the image (its log says which). */
  const bootedAhead = async (since: number) => {
    for (let i = 0; i < 200; i++) {
      if (/sandbox sbx_\w+ ready in the warm pool of snapshot snap_\w+/.test(pooled.logs().slice(since))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("no sandbox was booted ahead from the image");
  };

  it("keeps a sandbox booted from an image after a create from it: the next create takes it; it is nobody's and never in usedBy", async () => {
    const opts = pooled.opts;
    const c = new Client(opts);
    const { snapshot } = await makeRoot(c, opts, "warm");
    const mark = pooled.logs().length;
    const first = await Sandbox.create({ ...opts, root: snapshot });
    await bootedAhead(pooled.logs().indexOf(`sandbox ${first.id} started`, mark) + 1);
    expect((await c.snapshots.get(snapshot))!.usedBy).toEqual([first.id]);
    expect((await Sandbox.list(opts)).map((s) => s.id)).toEqual([first.id]);
    const before = pooled.logs().length;
    await using second = await Sandbox.create({ ...opts, root: snapshot });
    // The daemon's log reaches the test a moment after the reply.
    for (let i = 0; i < 100 && !pooled.logs().slice(before).includes(`sandbox ${second.id} started`); i++) await new Promise((r) => setTimeout(r, 20));
    expect(pooled.logs().slice(before)).toContain(`sandbox ${second.id} started from the warm pool`);
    // Its own layer, its own uid block, the image's files: as any sandbox booted from it.
    expect(await second.sh`cat /etc/os-release; id -u`.text()).toBe("ID=sbx-mini\n1000\n");
    expect(await second.sh`id -u`.sudo().text()).toBe("0\n");
    await first.kill();
    await second.kill();
  });

  it("deleting the snapshot ends the sandboxes booted ahead from it first, and is refused only for sandboxes someone owns", async () => {
    const opts = pooled.opts;
    const c = new Client(opts);
    const { snapshot } = await makeRoot(c, opts, "evict");
    const mark = pooled.logs().length;
    const sb = await Sandbox.create({ ...opts, root: snapshot });
    await bootedAhead(pooled.logs().indexOf(`sandbox ${sb.id} started`, mark) + 1);
    const refused = await rejection(c.snapshots.delete(snapshot));
    expect(refused).toBeInstanceOf(InUseError);
    expect(refused.message).toBe(`cannot delete snapshot '${snapshot}': it is mounted by ${sb.id}`);
    await sb.kill();
    await untilFree(() => c.snapshots.delete(snapshot));
    expect(await c.snapshots.get(snapshot)).toBeNull();
  });
});
