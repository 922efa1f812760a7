import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, InUseError, InvalidOptionError, Sandbox, Snapshot, VolumeNotFoundError } from "@sbx/client";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { RawClient } from "../helpers/raw.js";

/**
 * Snapshots of volumes (issue 15 item 2) against a real root-mode daemon: read-only copies taken
 * while no sandbox has the volume, mounted read-only by any number of sandboxes, the start of new
 * volumes; list, get, delete refused while in use.
 */

const MIB = 2 ** 20;
const TENANT_B = `tenant-b-${randomBytes(24).toString("base64url")}`;
let daemon: TestDaemon;
let A: { url: string; token: string };
let B: { url: string; token: string };
const slug = (stem: string) => `${stem}-${randomBytes(3).toString("hex")}`;
const rejection = (p: Promise<unknown>) => p.then(() => new Error("resolved, expected a rejection"), (e: unknown) => e as Error);

beforeAll(async () => {
  daemon = await startDaemon({ config: { tokens: [TENANT_B] }, args: ["--warm-pool", "0"] });
  A = daemon.opts;
  B = { url: daemon.url, token: TENANT_B };
});

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
});

/** A volume of tenant A holding `text` in /f (world-readable) and /private (mode 600). */
async function volumeWith(text: string, capacity = "32MiB") {
  const s = slug("src");
  const v = await new Client(A).volumes.create({ slug: s, capacity });
  await using sb = await Sandbox.create({ ...A, volumes: { "/data": s } });
  await sb.sh`echo ${text} > /data/f; echo secret > /data/private; chmod 600 /data/private; mkdir /data/dir`;
  await sb.kill();
  return v;
}

describe("snapshots", () => {
  it("keeps the volume's contents as they were, read-only, while the volume changes on", async () => {
    const client = new Client(A);
    const v = await volumeWith("first");
    const snapSlug = slug("snap");
    const snap = await client.volumes.snapshot(v.slug, { slug: snapSlug });
    expect(snap).toBeInstanceOf(Snapshot);
    expect(snap.id).toMatch(/^snap_[0-9A-Za-z]{24}$/);
    expect(snap.volume).toEqual({ id: v.id, slug: v.slug });
    expect(snap.flattenedSize).toBeGreaterThan(0);
    expect(snap.usedBy).toEqual([]);
    expect((await Snapshot.get(snapSlug, A))!.id).toBe(snap.id);
    expect((await client.snapshots.list({ search: snapSlug })).items.map((s) => s.id)).toEqual([snap.id]);

    await using writer = await Sandbox.create({ ...A, volumes: { "/data": v.slug, "/ref": snapSlug } });
    // The volume can be written (and the snapshot mounted beside it); the snapshot cannot.
    const out = await writer.sh`echo second > /data/f; cat /data/f /ref/f; (echo x > /ref/new) 2>&1; touch /ref/f 2>&1; true`.noThrow().text();
    expect(out).toMatch(/^second\nfirst\n/);
    expect(out.match(/Read-only file system/g)).toHaveLength(2);
    expect((await client.snapshots.get(snapSlug))!.usedBy).toEqual([writer.id]);

    // Any number of readers at once; delete is refused while any has it mounted.
    await using reader = await Sandbox.create({ ...A, volumes: { "/ref": snap.id } });
    expect(await reader.sh`cat /ref/f`.text()).toBe("first\n");
    // Read-only mounts keep the files' owners: another sandbox's uid, so a mode-600 file stays unreadable
    // (documented; a volume made `from` the snapshot is the way to own the files).
    expect(await reader.sh`stat -c %u /ref/f; cat /ref/private 2>&1`.noThrow().text()).toBe("65534\ncat: /ref/private: Permission denied\n");
    expect((await client.snapshots.get(snap.id))!.usedBy.sort()).toEqual([writer.id, reader.id].sort());
    const del = await rejection(client.snapshots.delete(snapSlug));
    expect(del).toBeInstanceOf(InUseError);
    expect(del.message).toMatch(new RegExp(`^cannot delete snapshot '${snapSlug}': it is mounted by sbx_`));
    await writer.kill();
    expect((await client.snapshots.get(snap.id))!.usedBy).toEqual([reader.id]);
    await reader.kill();
    await client.snapshots.delete(snapSlug);
    expect(await client.snapshots.get(snapSlug)).toBeNull();
    await client.volumes.delete(v.id);
  });

  it("starts new volumes from a snapshot (copied, sized as asked), refusing a capacity too small for its data", async () => {
    const client = new Client(A);
    const v = await volumeWith("seed");
    const snap = await client.volumes.snapshot(v.id, { slug: slug("base") });
    const copy = await client.volumes.create({ slug: slug("copy"), capacity: "64MiB", from: snap.slug });
    expect(copy.baseSnapshot).toEqual({ id: snap.id, slug: snap.slug });
    expect(copy.capacity).toBe(64 * MIB);
    {
      await using sb = await Sandbox.create({ ...A, volumes: { "/data": copy.slug } });
      // The copy is the new sandbox's own: every file handed to it, the private one too.
      expect(await sb.sh`cat /data/f /data/private; echo changed > /data/f; df -B1 --output=size /data | tail -1`.text()).toMatch(/^seed\nsecret\n\s*\d+\n$/);
      await sb.kill();
    }
    await using check = await Sandbox.create({ ...A, volumes: { "/ref": snap.slug } });
    expect(await check.sh`cat /ref/f`.text()).toBe("seed\n");
    await check.kill();

    // Filled beyond 16 MiB, a snapshot cannot become a 16 MiB volume.
    {
      await using sb = await Sandbox.create({ ...A, volumes: { "/data": v.slug } });
      await sb.sh`head -c 20000000 /dev/urandom > /data/blob`;
      await sb.kill();
    }
    const big = await client.volumes.snapshot(v.slug, { slug: slug("big") });
    const tooSmall = await rejection(client.volumes.create({ slug: slug("small"), capacity: "16MiB", from: big.id }));
    expect(tooSmall).toBeInstanceOf(InvalidOptionError);
    expect(tooSmall.message).toMatch(new RegExp(`^params.capacity: 16777216 bytes is too small for snapshot '${big.slug}''s data`));
    expect((await client.volumes.list({ search: "small-" })).items).toEqual([]);

    // Deleting the volume leaves its snapshots; they no longer name it.
    await client.volumes.delete(v.id);
    expect((await client.snapshots.get(snap.id))!.volume).toBeNull();
    for (const s of [snap, big]) await client.snapshots.delete(s.id);
    expect((await client.volumes.get(copy.id))!.baseSnapshot).toBeNull();
    await client.volumes.delete(copy.id);
  });

  it("shares the slug namespace with volumes, and is invisible to other tokens", async () => {
    const client = new Client(A);
    const v = await volumeWith("mine");
    const taken = await rejection(client.volumes.snapshot(v.id, { slug: v.slug }));
    expect(taken).toBeInstanceOf(InvalidOptionError);
    expect(taken.message).toBe(`params.slug: '${v.slug}' is already the slug of a volume or snapshot of this token`);
    const snap = await client.volumes.snapshot(v.id, { slug: slug("own") });

    const intruder = new Client(B);
    expect(await intruder.snapshots.get(snap.id)).toBeNull();
    expect(await intruder.snapshots.get(snap.slug)).toBeNull();
    expect((await intruder.snapshots.list()).items).toEqual([]);
    expect(await rejection(intruder.snapshots.delete(snap.id))).toBeInstanceOf(VolumeNotFoundError);
    const from = await rejection(intruder.volumes.create({ slug: slug("steal"), capacity: "32MiB", from: snap.id }));
    expect(from).toBeInstanceOf(VolumeNotFoundError);
    expect(from.message).toBe(`no snapshot '${snap.id}'`);
    const mount = await rejection(Sandbox.create({ ...B, volumes: { "/ref": snap.slug } }));
    expect(mount).toBeInstanceOf(VolumeNotFoundError);
    // A volume's slug is not a snapshot: `from` names snapshots only.
    const notSnap = await rejection(client.volumes.create({ slug: slug("x"), capacity: "32MiB", from: v.slug }));
    expect(notSnap.message).toBe(`no snapshot '${v.slug}'`);

    await client.snapshots.delete(snap.id);
    await client.volumes.delete(v.id);
  });

  it("sandbox.snapshot copies a running sandbox's home and /tmp consistently, while it keeps writing; other tokens cannot", async () => {
    const client = new Client(A);
    await using sb = await Sandbox.create(A);
    await sb.sh`mkdir -p project && echo state > project/f && echo scratch > /tmp/t`;
    // A writer running through the snapshot: the freeze holds it, it carries on after.
    const writer = await sb.spawn("bash", { args: ["-c", "for i in $(seq 200); do echo $i >> /home/user/log; sleep 0.01; done"] });
    const snap = await sb.snapshot({ slug: slug("live") });
    expect(snap).toBeInstanceOf(Snapshot);
    expect(snap.sandbox).toBe(sb.id);
    expect(snap.volume).toBeNull();
    expect((await writer.status).success).toBe(true);
    expect(await sb.sh`wc -l < log`.text()).toBe("200\n");

    // A sandbox's storage is a 10 GiB file system: its metadata alone needs about 90 MiB.
    const copy = await client.volumes.create({ slug: slug("from-sbx"), capacity: "256MiB", from: snap.id });
    await using other = await Sandbox.create({ ...A, volumes: { "/restored": copy.slug } });
    const seen = await other.sh`cat /restored/home/project/f /restored/tmp/t; n=$(wc -l < /restored/home/log); [ "$n" -ge 0 ] && [ "$n" -le 200 ] && echo lines-ok; seq $n | diff - /restored/home/log && echo prefix-ok`.text();
    expect(seen).toBe("state\nscratch\nlines-ok\nprefix-ok\n");

    // Another token naming this sandbox gets what an unknown id gets, and no snapshot is made.
    const raw = await RawClient.open(B.url, B.token);
    const refused = await raw.call("sandbox.snapshot", { id: sb.id, slug: slug("steal") });
    raw.close();
    expect(refused.error).toMatchObject({ code: -32001, message: `no running sandbox '${sb.id}'` });
    expect((await new Client(B).snapshots.list()).items).toEqual([]);
    await other.kill();
    await client.volumes.delete(copy.id);
    await client.snapshots.delete(snap.id);
  });

  it("a sandbox killed while its storage is frozen for a snapshot still ends, and the daemon carries on", async () => {
    const sb = await Sandbox.create(A);
    await sb.sh`head -c 200000000 /dev/urandom > big`;
    const writer = await sb.spawn("bash", { args: ["-c", "while :; do echo x >> /home/user/log; done"] });
    void writer.status.catch(() => {});
    const taking = sb.snapshot({ slug: slug("killed") }).then(
      (snap) => snap,
      (e: unknown) => e as Error,
    );
    await new Promise((r) => setTimeout(r, 30));
    const killer = await Sandbox.connect(sb.id, A);
    await killer.kill();
    const result = await taking;
    // Either the copy finished before the kill landed, or the call failed; never a hang.
    if (result instanceof Error) expect(result.message).toMatch(/could not snapshot sandbox|no running sandbox|Connection|closed/i);
    else await new Client(A).snapshots.delete(result.id);
    for (let i = 0; i < 100 && (await Sandbox.list(A)).some((s) => s.id === sb.id); i++) await new Promise((r) => setTimeout(r, 50));
    expect((await Sandbox.list(A)).map((s) => s.id)).not.toContain(sb.id);
    expect(daemon.logs()).not.toMatch(/unfreeze failed/);
    await using after = await Sandbox.create(A);
    expect(await after.sh`echo alive`.text()).toBe("alive\n");
    await sb.close().catch(() => {});
  });
});
