import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, InUseError, InvalidOptionError, RpcError, Sandbox, Volume, VolumeNotFoundError } from "@sbx/client";
import { removeStateDir, startDaemon, type TestDaemon } from "../helpers/daemon.js";

/**
 * Volumes (issue 15 item 1) against a real root-mode daemon: ext4 images under the state dir,
 * loop-mounted and bound into bwrap. Every refusal is checked for its class and its words.
 */

const MIB = 2 ** 20;
const TENANT_B = `tenant-b-${randomBytes(24).toString("base64url")}`;
let daemon: TestDaemon;
let A: { url: string; token: string };
let B: { url: string; token: string };
const slug = (stem: string) => `${stem}-${randomBytes(3).toString("hex")}`;

beforeAll(async () => {
  daemon = await startDaemon({ config: { tokens: [TENANT_B] }, args: ["--warm-pool", "0"] });
  A = daemon.opts;
  B = { url: daemon.url, token: TENANT_B };
});

afterAll(async () => {
  // The last daemon was started on the first one's state dir (see "daemon restarts"), so that dir is removed here.
  await daemon?.[Symbol.asyncDispose]();
  if (daemon) await removeStateDir(daemon.stateDir);
});

const rejection = (p: Promise<unknown>) => p.then(() => new Error("resolved, expected a rejection"), (e: unknown) => e as Error);

describe("volumes: create, get, list, delete", () => {
  it("creates a volume with Deno's shape, finds it by id and slug, lists and deletes it", async () => {
    const client = new Client(A);
    const s = slug("vol");
    const v = await client.volumes.create({ slug: s, capacity: "64MiB", region: "ord" });
    expect(v).toBeInstanceOf(Volume);
    expect(v.id).toMatch(/^vol_[0-9A-Za-z]{24}$/);
    expect(v.slug).toBe(s);
    expect(v.region).toBe("ord");
    expect(v.capacity).toBe(64 * MIB);
    expect(v.isBootable).toBe(false);
    expect(v.baseSnapshot).toBeNull();
    expect(v.mountedBy).toBeNull();
    // A fresh journaled ext4: a little in use, the sparse image far smaller than its capacity.
    expect(v.estimatedFlattenedSize).toBeGreaterThan(0);
    expect(v.estimatedFlattenedSize).toBeLessThan(8 * MIB);
    expect(v.estimatedAllocatedSize).toBeLessThan(v.capacity / 2);
    // The image and its record live under the state dir, readable by root alone.
    const img = join(daemon.stateDir, "volumes", `${v.id}.img`);
    expect(statSync(img).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(daemon.stateDir, "volumes", `${v.id}.json`), "utf8"))).toMatchObject({ id: v.id, slug: s, kind: "volume" });

    expect((await Volume.get(s, A))!.id).toBe(v.id);
    expect((await client.volumes.get(v.id))!.slug).toBe(s);
    const listed = await client.volumes.list({ search: s });
    expect(listed.items.map((x) => x.id)).toEqual([v.id]);
    expect(listed.hasMore).toBe(false);

    await client.volumes.delete(s);
    expect(await client.volumes.get(s)).toBeNull();
    expect(existsSync(img)).toBe(false);
    const again = await rejection(client.volumes.delete(s));
    expect(again).toBeInstanceOf(VolumeNotFoundError);
    expect(again.message).toBe(`no volume '${s}'`);
  });

  it("refuses bad slugs, taken slugs and capacities out of range, naming the parameter", async () => {
    const client = new Client(A);
    for (const bad of ["a", "-ab", "ab-", "Ab", "ab--cd", "a".repeat(33), "a_b"]) {
      const err = await rejection(client.volumes.create({ slug: bad, capacity: "16MiB" }));
      expect(err, bad).toBeInstanceOf(InvalidOptionError);
      expect(err.message, bad).toMatch(/slug/);
    }
    const s = slug("taken");
    await client.volumes.create({ slug: s, capacity: "16MiB" });
    const dup = await rejection(client.volumes.create({ slug: s, capacity: "16MiB" }));
    expect(dup).toBeInstanceOf(InvalidOptionError);
    expect(dup.message).toBe(`params.slug: '${s}' is already the slug of a volume or snapshot of this token`);
    const small = await rejection(client.volumes.create({ slug: slug("small"), capacity: "1MiB" }));
    expect(small.message).toBe("params.capacity: 1048576 bytes is outside 16777216 (16 MiB) to 1099511627776 (1 TiB)");
    const garbage = await rejection(client.volumes.create({ slug: slug("g"), capacity: "lots" }));
    expect(garbage).toBeInstanceOf(InvalidOptionError);
    await client.volumes.delete(s);
  });

  it("pages through a list with a cursor, and for await runs through every page", async () => {
    const client = new Client(A);
    const stem = slug("page");
    const made = [];
    for (let i = 0; i < 3; i++) made.push(await client.volumes.create({ slug: `${stem}-${i}`, capacity: "16MiB" }));
    const first = await client.volumes.list({ search: stem, limit: 2 });
    expect(first.items.map((v) => v.slug)).toEqual([`${stem}-0`, `${stem}-1`]);
    expect(first.hasMore).toBe(true);
    const second = await first.getNextPage();
    expect(second!.items.map((v) => v.slug)).toEqual([`${stem}-2`]);
    expect(await second!.getNextPage()).toBeNull();
    const all: string[] = [];
    for await (const v of first) all.push(v.slug);
    expect(all).toEqual(made.map((v) => v.slug));
    const badCursor = await rejection(client.volumes.list({ cursor: "vol_nope" }));
    expect(badCursor).toBeInstanceOf(InvalidOptionError);
    for (const v of made) await client.volumes.delete(v.id);
  });
});

describe("volumes in sandboxes", () => {
  it("keeps data across sandboxes (each with its own host uid), one writer at a time, delete refused while mounted", async () => {
    const client = new Client(A);
    const s = slug("data");
    const v = await client.volumes.create({ slug: s, capacity: "64MiB" });
    const first = await Sandbox.create({ ...A, volumes: { "/data": s } });
    // Owned by the sandbox's user, writable, and nothing else in it.
    expect(await first.sh`stat -c '%u %a' /data; ls -A /data | wc -l; echo hello > /data/f; mkdir -p /data/d/e; echo deep > /data/d/e/g; ln -s /etc/passwd /data/link`.text()).toBe("1000 755\n0\n");
    const mounted = await client.volumes.get(s);
    expect(mounted!.mountedBy).toBe(first.id);
    expect(mounted!.estimatedFlattenedSize).toBeGreaterThan(v.estimatedFlattenedSize);

    // A second read-write mount is refused, clearly, while the first sandbox runs.
    const second = await rejection(Sandbox.create({ ...A, volumes: { "/other": s } }));
    expect(second).toBeInstanceOf(InUseError);
    expect(second.message).toBe(`cannot mount volume '${s}': it is mounted by ${first.id}`);
    const twice = await rejection(Sandbox.create({ ...A, volumes: { "/a": s, "/b": v.id } }));
    expect(twice).toBeInstanceOf(InUseError);
    const del = await rejection(client.volumes.delete(s));
    expect(del).toBeInstanceOf(InUseError);
    expect(del.message).toBe(`cannot delete volume '${s}': it is mounted by ${first.id}`);
    const resize = await rejection(client.volumes.resize(s, "128MiB"));
    expect(resize.message).toBe(`cannot resize volume '${s}': it is mounted by ${first.id}`);
    const snap = await rejection(client.volumes.snapshot(s, { slug: slug("snap") }));
    expect(snap.message).toBe(`cannot snapshot volume '${s}': it is mounted by ${first.id}`);
    const firstUid = Number(readFileSync(`/proc/${await hostPidOf(first)}/status`, "utf8").match(/^Uid:\s+(\d+)/m)![1]);

    // kill resolves once the volume is free again: the next sandbox mounts it at once.
    await first.kill();
    expect((await client.volumes.get(s))!.mountedBy).toBeNull();
    // Takes the uid the first sandbox had, so the next one runs as another.
    await using _blocker = await Sandbox.create(A);
    await using next = await Sandbox.create({ ...A, volumes: { "/home/user/work": s } });
    const nextUid = Number(readFileSync(`/proc/${await hostPidOf(next)}/status`, "utf8").match(/^Uid:\s+(\d+)/m)![1]);
    expect(nextUid).not.toBe(firstUid);
    // Every file is handed to the new sandbox's uid; the symlink is not followed (the host's /etc/passwd keeps its owner).
    expect(await next.sh`cd work && cat f d/e/g && stat -c '%u' f d d/e d/e/g && readlink link && echo more >> f && touch d/e/new`.text()).toBe("hello\ndeep\n1000\n1000\n1000\n1000\n/etc/passwd\n");
    expect(statSync("/etc/passwd").uid).toBe(0);
    // Asked for below the home's former name, it is in the home, and seen through both names.
    expect(await next.sh`cat /home/sandbox/work/f /home/user/work/f`.text()).toBe("hello\nmore\nhello\nmore\n");
    await next.kill();
    await client.volumes.delete(s);
  });

  it("a tree deeper than PATH_MAX, hostile names and links do not stop the next sandbox from owning its volume", async () => {
    const s = slug("deep");
    await new Client(A).volumes.create({ slug: s, capacity: "32MiB" });
    {
      await using sb = await Sandbox.create({ ...A, volumes: { "/data": s } });
      // 300 levels of 20-character names: about 6300 characters, past PATH_MAX (4096).
      const built = await sb.sh`cd /data && for i in $(seq 300); do mkdir aaaaaaaaaaaaaaaaaaaa && cd aaaaaaaaaaaaaaaaaaaa || exit 1; done && echo bottom > f && pwd | wc -c; cd /data && touch "$(printf 'new\nline')" && ln -s /proc/self/root/etc/shadow esc && ln -s .. up && mkfifo pipe && echo done`.text();
      expect(Number(built.split("\n")[0])).toBeGreaterThan(4096);
      await sb.kill();
    }
    await using _blocker = await Sandbox.create(A);
    await using next = await Sandbox.create({ ...A, volumes: { "/data": s } });
    const seen = await next.sh`cd /data && stat -c %u esc up pipe "$(printf 'new\nline')"; for i in $(seq 300); do cd aaaaaaaaaaaaaaaaaaaa; done; stat -c %u f; cat f`.text();
    expect(seen).toBe("1000\n1000\n1000\n1000\n1000\nbottom\n");
    expect(statSync("/etc/shadow").uid).toBe(0);
    await next.kill();
    await new Client(A).volumes.delete(s);
  });

  it("an image that cannot be mounted fails the create with what failed, no host paths, and leaves nothing reserved", async () => {
    const client = new Client(A);
    const s = slug("broken");
    const v = await client.volumes.create({ slug: s, capacity: "16MiB" });
    // The host (not a sandbox) damages the image: its superblock zeroed.
    execFileSync("dd", ["if=/dev/zero", `of=${join(daemon.stateDir, "volumes", `${v.id}.img`)}`, "bs=1024", "seek=1", "count=1", "conv=notrunc"], { stdio: "ignore" });
    const before = (await Sandbox.list(A)).map((x) => x.id);
    const err = await rejection(Sandbox.create({ ...A, volumes: { "/data": s } }));
    expect(err).toBeInstanceOf(RpcError);
    expect(err.message).toMatch(new RegExp(`^could not mount volume '${s}' \\(the daemon's log says why\\)`));
    expect(err.message).not.toContain(daemon.stateDir);
    expect(daemon.logs()).toContain(`could not mount volume '${s}': mount failed`);
    // Nothing reserved, nothing started; the volume is still listed (its usage estimated, the log says why) and deletable.
    for (const x of await Sandbox.list(A)) expect(before).toContain(x.id);
    const listed = (await client.volumes.list({ search: s })).items;
    expect(listed.map((x) => [x.id, x.mountedBy])).toEqual([[v.id, null]]);
    expect(daemon.logs()).toMatch(new RegExp(`volume ${v.id}: cannot read its file system's usage, estimating it at the image's size`));
    await client.volumes.delete(s);
  });

  it("enforces the capacity: writing past it fails with ENOSPC inside, and the sandbox's own disk is untouched", async () => {
    const client = new Client(A);
    const s = slug("cap");
    await client.volumes.create({ slug: s, capacity: "16MiB" });
    await using sb = await Sandbox.create({ ...A, volumes: { "/data": s } });
    const out = await sb.sh`dd if=/dev/zero of=/data/big bs=1M count=32 2>&1; echo rc=$?; df -B1 --output=size,used /data | tail -1; echo ok > /home/user/still-writable && cat /home/user/still-writable`.noThrow().text();
    expect(out).toMatch(/No space left on device/);
    expect(out).toMatch(/rc=1/);
    expect(out).toMatch(/\nok\n$/);
    const [size] = out.split("\n").find((l) => /^\s*\d+\s+\d+\s*$/.test(l))!.trim().split(/\s+/).map(Number);
    expect(size!).toBeLessThanOrEqual(16 * MIB);
    const used = await client.volumes.get(s);
    expect(used!.estimatedFlattenedSize).toBeGreaterThan(12 * MIB);
    expect(used!.estimatedFlattenedSize).toBeLessThanOrEqual(16 * MIB);
    await sb.kill();
    await client.volumes.delete(s);
  });

  it("refuses mount paths over the system, unnormalized or overlapping, before starting anything", async () => {
    const s = slug("paths");
    await new Client(A).volumes.create({ slug: s, capacity: "16MiB" });
    const cases: Array<[string, RegExp]> = [
      ["/usr/lib", /is below \/usr, which the sandbox's isolation is built from/],
      ["/etc", /is \/etc, which the sandbox's isolation is built from/],
      ["/proc/self", /below \/proc/],
      ["/dev/shm", /below \/dev/],
      ["/.sbx/run", /below \/\.sbx/],
      ["/var/tmp/x", /below \/var\/tmp/],
      ["/", /would hide the sandbox's own files/],
      ["/home/user", /would hide the sandbox's own files/],
      ["/tmp", /would hide the sandbox's own files/],
      ["data", /is not absolute/],
      ["/data/../etc", /not normalized/],
      ["/data//x", /not normalized/],
      ["/data/", /not normalized/],
    ];
    for (const [path, message] of cases) {
      const err = await rejection(Sandbox.create({ ...A, volumes: { [path]: s } }));
      expect(err, path).toBeInstanceOf(InvalidOptionError);
      expect(err.message, path).toMatch(message);
      expect(err.message, path).toContain("params.volumes[");
    }
    const overlap = await rejection(Sandbox.create({ ...A, volumes: { "/data": s, "/data/x": s } }));
    expect(overlap.message).toBe("params.volumes: mount paths '/data' and '/data/x' overlap: one would be inside the other");
    // Nothing was left reserved by the refusals.
    expect((await new Client(A).volumes.get(s))!.mountedBy).toBeNull();
    await new Client(A).volumes.delete(s);
  });
});

describe("volumes across tenants", () => {
  it("another token can neither see, mount, resize, snapshot nor delete a volume, and has its own slugs", async () => {
    const s = slug("mine");
    const v = await new Client(A).volumes.create({ slug: s, capacity: "16MiB" });
    const intruder = new Client(B);
    expect(await intruder.volumes.get(s)).toBeNull();
    expect(await intruder.volumes.get(v.id)).toBeNull();
    expect((await intruder.volumes.list()).items.map((x) => x.id)).not.toContain(v.id);
    for (const attempt of [() => intruder.volumes.delete(v.id), () => intruder.volumes.resize(s, "32MiB"), () => intruder.volumes.snapshot(v.id, { slug: slug("steal") })]) {
      const err = await rejection(attempt());
      expect(err).toBeInstanceOf(VolumeNotFoundError);
    }
    const mount = await rejection(Sandbox.create({ ...B, volumes: { "/data": v.id } }));
    expect(mount).toBeInstanceOf(VolumeNotFoundError);
    expect(mount.message).toBe(`no volume or snapshot '${v.id}'`);
    // The same slug is free in B's own namespace, and names B's volume there.
    const theirs = await intruder.volumes.create({ slug: s, capacity: "16MiB" });
    expect(theirs.id).not.toBe(v.id);
    expect((await new Client(A).volumes.get(s))!.id).toBe(v.id);
    await intruder.volumes.delete(s);
    expect((await new Client(A).volumes.get(s))!.id).toBe(v.id);
    await new Client(A).volumes.delete(s);
  });
});

describe("resize", () => {
  it("grows a volume keeping its data, and refuses to shrink below what the data needs", async () => {
    const client = new Client(A);
    const s = slug("grow");
    await client.volumes.create({ slug: s, capacity: "32MiB" });
    {
      await using sb = await Sandbox.create({ ...A, volumes: { "/data": s } });
      await sb.sh`head -c 20000000 /dev/urandom > /data/blob && sha256sum /data/blob > /data/sum`;
      await sb.kill();
    }
    const grown = await client.volumes.resize(s, "96MiB");
    expect(grown.capacity).toBe(96 * MIB);
    const shrink = await rejection(client.volumes.resize(s, "16MiB"));
    expect(shrink).toBeInstanceOf(InvalidOptionError);
    expect(shrink.message).toMatch(new RegExp(`^params.capacity: 16777216 bytes is too small for the data on volume '${s}'`));
    expect((await client.volumes.get(s))!.capacity).toBe(96 * MIB);
    await using sb = await Sandbox.create({ ...A, volumes: { "/data": s } });
    expect(await sb.sh`sha256sum -c /data/sum >/dev/null && echo intact`.text()).toBe("intact\n");
    const size = Number((await sb.sh`df -B1 --output=size /data | tail -1`.text()).trim());
    expect(size).toBeGreaterThan(80 * MIB);
    await sb.kill();
    await client.volumes.delete(s);
  });
});

describe("concurrent writers", () => {
  it("two creates racing for one volume: exactly one gets it, the other is refused clearly", async () => {
    const s = slug("race");
    await new Client(A).volumes.create({ slug: s, capacity: "16MiB" });
    const results = await Promise.allSettled([Sandbox.create({ ...A, volumes: { "/data": s } }), Sandbox.create({ ...A, volumes: { "/data": s } })]);
    const won = results.filter((r): r is PromiseFulfilledResult<Sandbox> => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toBeInstanceOf(InUseError);
    expect(lost[0]!.reason.message).toMatch(new RegExp(`^cannot mount volume '${s}': it is (reserved by a sandbox being created|mounted by sbx_)`));
    await won[0]!.value.kill();
    await new Client(A).volumes.delete(s);
  });
});

describe("daemon restarts", () => {
  it("volumes, their owners and data survive a clean restart and a SIGKILL of the daemon while mounted", async () => {
    const s = slug("keep");
    const v = await new Client(A).volumes.create({ slug: s, capacity: "32MiB" });
    {
      await using sb = await Sandbox.create({ ...A, volumes: { "/data": s } });
      await sb.sh`echo before-restart > /data/note`;
      await sb.kill();
    }
    await daemon.stop();
    daemon = await startDaemon({ stateDir: daemon.stateDir, config: { tokens: [TENANT_B] }, args: ["--warm-pool", "0"] });
    A = daemon.opts;
    B = { url: daemon.url, token: TENANT_B };
    const back = await new Client(A).volumes.get(s);
    expect(back!.id).toBe(v.id);
    expect(back!.capacity).toBe(32 * MIB);
    expect(await new Client(B).volumes.get(s)).toBeNull();
    const sb = await Sandbox.create({ ...A, volumes: { "/data": s } });
    expect(await sb.sh`cat /data/note; echo written-before-the-kill > /data/late`.text()).toBe("before-restart\n");

    // SIGKILL: no teardown runs; the next daemon detaches the mount it finds and the volume is usable again.
    await daemon.stop("SIGKILL");
    daemon = await startDaemon({ stateDir: daemon.stateDir, config: { tokens: [TENANT_B] }, args: ["--warm-pool", "0"] });
    A = daemon.opts;
    expect(daemon.logs()).toMatch(/detached 1 volume mounts left by a previous daemon/);
    const after = await new Client(A).volumes.get(s);
    expect(after!.mountedBy).toBeNull();
    await using again = await Sandbox.create({ ...A, volumes: { "/data": s } });
    expect(await again.sh`cat /data/note /data/late`.text()).toBe("before-restart\nwritten-before-the-kill\n");
    await again.kill();
    await new Client(A).volumes.delete(s);
  });
});

/** The host pid of a process inside the sandbox (its `sleep`), for reading its host uid. */
async function hostPidOf(sb: Sandbox): Promise<number> {
  const marker = `sbx-uid-probe-${randomBytes(4).toString("hex")}`;
  await sb.spawn("bash", { args: ["-c", `exec -a ${marker} sleep 30`] });
  for (let i = 0; i < 100; i++) {
    for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith(marker)) return Number(pid);
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("probe process not found");
}

