import { closeSync, openSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { customAlphabet } from "nanoid";
import { parseBytes, SANDBOX_HOME, SANDBOX_HOME_ALIAS, VOLUME_LIMITS, type ParamsOf, type ResultOf } from "@sbx/protocol";
import { DaemonError, invalid } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import { mountPoints } from "../util/mountinfo.js";
import { allocatedBytes, attached, chownTree, copyImage, freeze, HostDiskFull, makeImage, mountImage, resizeImage, ShrinkError, unmountImage, usedBytes } from "./image.js";
import { mountPathProblem, overlapping } from "./paths.js";
import { makeLayers, prepareRoot, RootProblem, rootKernelProblem, unmountRootMount } from "./root.js";
import { SANDBOX_UID } from "../sandbox/launcher.js";
import { UID_BLOCK } from "../sandbox/uid-range.js";

/** How long a snapshot stays mounted after its last reader ended. */
const SNAPSHOT_LINGER_MS = 60_000;
const newId = customAlphabet("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 24);

type Kind = "volume" | "snapshot";

/** What is kept on disk for each volume and snapshot (`<dir>/<id>.json`, beside `<id>.img`). */
interface VolumeRecord {
  kind: Kind;
  id: string;
  slug: string;
  /** The owner key (the token's digest) of the tenant that made it. */
  owner: string;
  region: string;
  createdAt: string;
  /** Volumes: the file system's size. */
  capacity?: number;
  /** Volumes: the snapshot it was made from. */
  baseSnapshot?: { id: string; slug: string };
  /** Snapshots: the volume it was taken of. */
  volume?: { id: string; slug: string };
  /** Snapshots: the sandbox whose storage it was taken of. */
  sandbox?: string;
  /** Volumes: the host uid its files were last handed to (a sandbox with the same uid needs no chown walk). */
  lastUid?: number;
  /** A root image (isBootable): how `image.build` made it; copied to volumes made from it and their snapshots. */
  build?: ImageBuildInfo;
}

/** How a root image was built: the Debian suite, the packages asked for, and the mirror they came from. */
export interface ImageBuildInfo {
  suite: string;
  packages: string[];
  mirror: string;
}

/** One mount of a volume (read-write, by one sandbox) or of a snapshot (read-only, shared by its readers). */
interface Mount {
  at: string;
  fd: number;
  /** Sandboxes using it: exactly one for a volume. */
  users: Set<string>;
}

/** What a sandbox gets bound in: a directory fd of the mounted file system, and where. */
export interface VolumeBind {
  path: string;
  fd: number;
  readOnly: boolean;
}

/**
 * A root's view for sbx-launch to mount (it idmaps it by the sandbox's own user namespace, with
 * no exec of the daemon's) and hand to bwrap as /: `source` (the image's mount) seen at `target`
 * with disk owner N as host uid base+N, and for a snapshot an overlay at `merged` over it.
 */
export interface RootView {
  source: string;
  target: string;
  readOnly: boolean;
  overlay: { upper: string; work: string; merged: string } | null;
}

/** Why sbx-launch cannot take a view's paths (overlay options are split at ',' and ':'), or null. */
export function viewPathProblem(view: RootView): string | null {
  const paths = [view.source, view.target, ...(view.overlay ? [view.overlay.upper, view.overlay.work, view.overlay.merged] : [])];
  const bad = paths.find((p) => /[,:]/.test(p));
  return bad ? `its mount path ${JSON.stringify(bad)} holds ',' or ':' (the daemon's state dir may not, to boot sandboxes from images)` : null;
}

/** The file system a sandbox boots from (`root`). */
export interface RootBind {
  view: RootView;
  /** A volume root holds the home and /tmp itself; a snapshot root gets the sandbox's storage for them. */
  ownHome: boolean;
  /** Where this root keeps its system CA bundle (bound over with the daemon's). */
  systemBundle: string;
}

/** The volumes (and root) a sandbox asked for, reserved before it starts; mounted once its host uid and storage are known. */
export interface VolumeClaim {
  /** Whether it names a root to boot from (the sandbox then takes a block of host uids). */
  readonly boots: boolean;
  /**
   * `storageRoot`: the sandbox's own storage, where a snapshot root's writable layer goes;
   * `rootBase`: the first host uid of its block (its uid 0), when it boots from a root.
   */
  mount(sandboxId: string, hostUid: number, storageRoot: string, rootBase: number | null): Promise<{ binds: VolumeBind[]; root: RootBind | null }>;
  /** Gives back what `mount` (or the reservation) took; after the sandbox's bwrap has exited. */
  release(): Promise<void>;
  /** Settles once `release` has finished. */
  readonly released: Promise<void>;
}

type VolumeInfo = ResultOf<"volume.create">;
type SnapshotInfo = ResultOf<"volume.snapshot">;

/**
 * Every volume and snapshot of one daemon: records on disk (written atomically, so they survive
 * restarts), ownership by tenant, and who uses what. A volume is mounted read-write by at most one
 * sandbox; a snapshot read-only by any number. Calls that change an image (resize, snapshot,
 * delete, create from a snapshot) hold it busy, and refuse while a sandbox has it mounted.
 */
export class VolumeStore {
  private readonly records = new Map<string, VolumeRecord>();
  private readonly mounts = new Map<string, Mount>();
  /** Snapshots being mounted read-only right now, by the first of their readers. */
  private readonly mounting = new Map<string, Promise<Mount>>();
  /** Snapshots no sandbox uses, kept mounted a while for the next (their unmount timers), and those being unmounted. */
  private readonly lingering = new Map<string, NodeJS.Timeout>();
  private readonly unmounting = new Map<string, Promise<void>>();
  private closing = false;
  /** Ids reserved by a pending sandbox or held by a running call, with what holds them. */
  private readonly busy = new Map<string, string>();
  /** Snapshots being copied into new volumes (each may be read by several at once). */
  private readonly copying = new Map<string, number>();
  /** Sandboxes whose storage is frozen for a snapshot, settling once it is thawed. */
  private readonly frozen = new Map<string, Promise<void>>();

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    /** The warm pool of images: its sandboxes hold snapshots mounted but belong to nobody yet. */
    private readonly pooled: { evict(snapshotId: string): Promise<void>; hidden(sandboxId: string): boolean } = { evict: async () => {}, hidden: () => false },
    /** Put in every new id after "vol_" or "snap_" (config idPrefix), so a fleet gateway routes by id. */
    private readonly idPrefix: string | null = null,
  ) {}

  /** A new volume's ("vol") or snapshot's ("snap") id: "vol_<24 random>", or "vol_<prefix>_<24 random>" on a daemon with an id prefix. */
  private newRecordId(kind: "vol" | "snap"): string {
    return `${kind}_${this.idPrefix ? `${this.idPrefix}_` : ""}${newId()}`;
  }

  private get mountDir(): string {
    return join(this.dir, "mnt");
  }

  private image(id: string): string {
    return join(this.dir, `${id}.img`);
  }

  /** Loads the records, detaches mounts a previous daemon left, and removes images without a record. */
  async init(): Promise<void> {
    // Traversable by sandbox uids: bwrap resolves the bound fds' paths as the sandbox's uid.
    await fsp.mkdir(this.mountDir, { recursive: true, mode: 0o711 });
    await fsp.chmod(this.dir, 0o711);
    await fsp.chmod(this.mountDir, 0o711);
    const prefix = `${this.mountDir}/`;
    const left = mountPoints().filter((p) => p.startsWith(prefix));
    for (const at of left) await unmountImage(at);
    if (left.length) this.log.info(`detached ${left.length} volume mounts left by a previous daemon`);
    for (const name of await fsp.readdir(this.mountDir)) await fsp.rmdir(join(this.mountDir, name)).catch(() => {});
    const names = await fsp.readdir(this.dir);
    for (const name of names.filter((n) => n.endsWith(".json"))) {
      try {
        const r = JSON.parse(await fsp.readFile(join(this.dir, name), "utf8")) as VolumeRecord;
        if (`${r.id}.json` !== name || (r.kind !== "volume" && r.kind !== "snapshot")) throw new Error("not a volume record");
        this.records.set(r.id, r);
      } catch (err) {
        this.log.warn(`ignoring unreadable volume record ${name}: ${(err as Error).message}`);
      }
    }
    for (const name of names) {
      // Left by a call cut short (a crash mid-create, a delete that removed the record first).
      const orphan = (name.endsWith(".img") && !this.records.has(name.slice(0, -4))) || name.endsWith(".tmp");
      if (orphan) await fsp.rm(join(this.dir, name), { force: true });
    }
  }

  // ---- lookups -------------------------------------------------------------------------

  private find(owner: string, ref: string, kind?: Kind): VolumeRecord | undefined {
    for (const r of this.records.values()) {
      if (r.owner === owner && (r.id === ref || r.slug === ref) && (!kind || r.kind === kind)) return r;
    }
    return undefined;
  }

  /** The record `ref` names if `owner` made it; otherwise VolumeNotFound (never revealing another tenant's). */
  private lookup(owner: string, ref: string, kind?: Kind): VolumeRecord {
    const r = this.find(owner, ref, kind);
    if (!r) throw new DaemonError("VolumeNotFound", `no ${kind ?? "volume or snapshot"} '${ref.slice(0, 128)}'`);
    return r;
  }

  private inUse(r: VolumeRecord): string | null {
    const busy = this.busy.get(r.id);
    if (busy) return busy;
    const mount = this.mounts.get(r.id);
    const users = [...(mount?.users ?? [])].filter((id) => !this.pooled.hidden(id));
    if (users.length) return `mounted by ${users.join(", ")}`;
    if (mount?.users.size) return "mounted by sandboxes booted ahead from it (the warm pool of images)";
    if (this.copying.get(r.id)) return "being copied into a new volume";
    return null;
  }

  /**
   * A failure of the daemon's own tools (mount, e2fsck, cp...): the whole story, host paths
   * included, goes to the log; the caller learns what failed and the request id to look up.
   */
  private internal(what: string, err: unknown): DaemonError {
    this.log.warn(`${what}: ${(err as Error).message}`);
    return new DaemonError("InternalError", `${what} (the daemon's log says why)`);
  }

  private refuseIfInUse(r: VolumeRecord, doing: string): void {
    const why = this.inUse(r);
    if (why) throw new DaemonError("InUse", `cannot ${doing} ${r.kind} '${r.slug}': it is ${why}`);
  }

  private hold(r: VolumeRecord, what: string): () => void {
    this.busy.set(r.id, what);
    return () => this.busy.delete(r.id);
  }

  private async save(r: VolumeRecord): Promise<void> {
    const path = join(this.dir, `${r.id}.json`);
    const fh = await fsp.open(`${path}.tmp`, "w", 0o600);
    try {
      await fh.writeFile(JSON.stringify(r));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(`${path}.tmp`, path);
    await this.syncDir();
  }

  private async syncDir(): Promise<void> {
    const dh = await fsp.open(this.dir, "r");
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }

  private checkNew(owner: string, slug: string): void {
    if (this.find(owner, slug)) throw invalid("slug", `'${slug}' is already the slug of a volume or snapshot of this token`);
    const count = [...this.records.values()].filter((r) => r.owner === owner).length;
    if (count >= VOLUME_LIMITS.perToken) {
      throw new DaemonError("ResourceLimit", `this token already has ${count} volumes and snapshots, the most the daemon allows (${VOLUME_LIMITS.perToken})`);
    }
  }

  // ---- what the API shows --------------------------------------------------------------

  /**
   * The image's size on the host disk and what its file system has in use. A file system whose
   * superblock cannot be read (a damaged image) is estimated at what its image holds, and logged,
   * so one bad volume does not break listing the rest.
   */
  private async sizes(r: VolumeRecord): Promise<{ allocated: number; used: number }> {
    const allocated = await allocatedBytes(this.image(r.id));
    try {
      return { allocated, used: await usedBytes(this.image(r.id), this.mounts.get(r.id)?.at ?? null) };
    } catch (err) {
      this.log.warn(`${r.kind} ${r.id}: cannot read its file system's usage, estimating it at the image's size: ${(err as Error).message}`);
      return { allocated, used: allocated };
    }
  }

  private async volumeInfo(r: VolumeRecord): Promise<VolumeInfo> {
    const mount = this.mounts.get(r.id);
    const { allocated, used } = await this.sizes(r);
    const base = r.baseSnapshot && this.records.has(r.baseSnapshot.id) ? { baseSnapshot: r.baseSnapshot } : {};
    return {
      id: r.id,
      slug: r.slug,
      region: r.region,
      capacity: r.capacity!,
      estimatedAllocatedSize: allocated,
      estimatedFlattenedSize: used,
      isBootable: r.build !== undefined,
      ...base,
      mountedBy: mount ? ([...mount.users][0] ?? null) : null,
      createdAt: r.createdAt,
    };
  }

  private async snapshotInfo(r: VolumeRecord): Promise<SnapshotInfo> {
    const mount = this.mounts.get(r.id);
    const { allocated, used } = await this.sizes(r);
    const volume = r.volume && this.records.has(r.volume.id) ? { volume: r.volume } : {};
    const sandbox = r.sandbox ? { sandbox: r.sandbox } : {};
    const build = r.build ? { build: r.build } : {};
    return { id: r.id, slug: r.slug, region: r.region, allocatedSize: allocated, flattenedSize: used, isBootable: r.build !== undefined, ...build, ...volume, ...sandbox, usedBy: [...(mount?.users ?? [])].filter((id) => !this.pooled.hidden(id)), createdAt: r.createdAt };
  }

  private page<T>(owner: string, kind: Kind, p: ParamsOf<"volume.list">, show: (r: VolumeRecord) => Promise<T>) {
    const all = [...this.records.values()]
      .filter((r) => r.owner === owner && r.kind === kind && (!p.search || r.slug.includes(p.search) || r.id.includes(p.search)))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    let start = 0;
    if (p.cursor) {
      start = all.findIndex((r) => r.id === p.cursor) + 1;
      if (start === 0) throw invalid("cursor", `'${p.cursor.slice(0, 128)}' is not a cursor of this list (it names no ${kind} of this token)`);
    }
    const limit = p.limit ?? 30;
    const items = all.slice(start, start + limit);
    const more = start + limit < all.length;
    return Promise.all(items.map(show)).then((shown) => ({ items: shown, nextCursor: more ? items[items.length - 1]!.id : null }));
  }

  // ---- volumes -------------------------------------------------------------------------

  async createVolume(owner: string, p: ParamsOf<"volume.create">): Promise<VolumeInfo> {
    const capacity = capacityOf(p.capacity);
    this.checkNew(owner, p.slug);
    const base = p.from === undefined ? null : this.lookup(owner, p.from, "snapshot");
    const r: VolumeRecord = { kind: "volume", id: this.newRecordId("vol"), slug: p.slug, owner, region: p.region ?? "local", createdAt: new Date().toISOString(), capacity };
    if (base) r.baseSnapshot = { id: base.id, slug: base.slug };
    if (base?.build) r.build = base.build;
    // The slug is taken from now on: a second create with it fails rather than racing this one.
    this.records.set(r.id, r);
    const release = this.hold(r, "being created");
    if (base) this.copying.set(base.id, (this.copying.get(base.id) ?? 0) + 1);
    try {
      if (base) {
        await copyImage(this.image(base.id), this.image(r.id));
        if ((await fsp.stat(this.image(r.id))).size !== capacity) await resizeImage(this.image(r.id), capacity);
      } else {
        await makeImage(this.image(r.id), capacity);
        await this.withMount(r, async (at) => fsp.rm(join(at, "lost+found"), { recursive: true, force: true }));
      }
      await this.save(r);
    } catch (err) {
      this.records.delete(r.id);
      await fsp.rm(this.image(r.id), { force: true });
      if (err instanceof ShrinkError) throw invalid("capacity", `${capacity} bytes is too small for snapshot '${base!.slug}''s data (${err.message})`);
      if (err instanceof HostDiskFull) throw new DaemonError("ResourceLimit", `could not make volume '${r.slug}': ${err.message}`);
      throw this.internal(`could not make the volume's file system`, err);
    } finally {
      release();
      if (base) this.copying.set(base.id, this.copying.get(base.id)! - 1);
    }
    this.log.info(`volume ${r.id} (${r.slug}) created, ${capacity} bytes${base ? ` from snapshot ${base.id}` : ""}`);
    return this.volumeInfo(r);
  }

  async getVolume(owner: string, ref: string): Promise<VolumeInfo> {
    return this.volumeInfo(this.lookup(owner, ref, "volume"));
  }

  listVolumes(owner: string, p: ParamsOf<"volume.list">) {
    return this.page(owner, "volume", p, (r) => this.volumeInfo(r));
  }

  async deleteVolume(owner: string, ref: string): Promise<void> {
    await this.remove(this.lookup(owner, ref, "volume"));
  }

  async resizeVolume(owner: string, ref: string, capacityParam: number | string): Promise<VolumeInfo> {
    const r = this.lookup(owner, ref, "volume");
    const capacity = capacityOf(capacityParam);
    this.refuseIfInUse(r, "resize");
    const release = this.hold(r, "being resized");
    try {
      await this.idle(r);
      await resizeImage(this.image(r.id), capacity);
      await this.save({ ...r, capacity });
      r.capacity = capacity;
    } catch (err) {
      if (err instanceof ShrinkError) throw invalid("capacity", `${capacity} bytes is too small for the data on volume '${r.slug}' (${err.message})`);
      if (err instanceof DaemonError) throw err;
      throw this.internal(`could not resize volume '${r.slug}'`, err);
    } finally {
      release();
    }
    this.log.info(`volume ${r.id} resized to ${capacity} bytes`);
    return this.volumeInfo(r);
  }

  // ---- snapshots -----------------------------------------------------------------------

  async snapshot(owner: string, ref: string, slug: string): Promise<SnapshotInfo> {
    const v = this.lookup(owner, ref, "volume");
    this.checkNew(owner, slug);
    this.refuseIfInUse(v, "snapshot");
    const r: VolumeRecord = { kind: "snapshot", id: this.newRecordId("snap"), slug, owner, region: v.region, createdAt: new Date().toISOString(), volume: { id: v.id, slug: v.slug }, ...(v.build ? { build: v.build } : {}) };
    this.records.set(r.id, r);
    const release = this.hold(v, "being snapshotted");
    const releaseSnap = this.hold(r, "being created");
    try {
      await this.idle(v);
      // A snapshot keeps canonical owners (the user's files 1000), so it can be a root.
      if (v.lastUid !== undefined) await this.canonicalize(v);
      await copyImage(this.image(v.id), this.image(r.id));
      await this.save(r);
    } catch (err) {
      this.records.delete(r.id);
      await fsp.rm(this.image(r.id), { force: true });
      if (err instanceof DaemonError) throw err;
      if (err instanceof HostDiskFull) throw new DaemonError("ResourceLimit", `could not snapshot volume '${v.slug}': ${err.message}`);
      throw this.internal(`could not snapshot volume '${v.slug}'`, err);
    } finally {
      release();
      releaseSnap();
    }
    this.log.info(`snapshot ${r.id} (${slug}) taken of volume ${v.id}`);
    return this.snapshotInfo(r);
  }

  /**
   * A snapshot of a running sandbox's writable storage (root mode: one ext4 image holding home and
   * /tmp). The file system is frozen for the copy, so the copy is consistent; the sandbox's
   * writes wait meanwhile and go on after.
   */
  async snapshotStorage(owner: string, sandboxId: string, storage: { root: string; image: string; hostUid: number; rootUid: number | null }, slug: string): Promise<SnapshotInfo> {
    if (this.frozen.has(sandboxId)) throw new DaemonError("InUse", `sandbox ${sandboxId} is already being snapshotted`);
    this.checkNew(owner, slug);
    const r: VolumeRecord = { kind: "snapshot", id: this.newRecordId("snap"), slug, owner, region: "local", createdAt: new Date().toISOString(), sandbox: sandboxId };
    this.records.set(r.id, r);
    const release = this.hold(r, "being created");
    let thawed!: () => void;
    this.frozen.set(sandboxId, new Promise<void>((resolve) => (thawed = resolve)));
    let fd: number | null = null;
    try {
      // Frozen and thawed through a descriptor the daemon holds: a sandbox killed meanwhile has its
      // storage detached from the path, and its file system must still be thawed for its processes to die.
      fd = openSync(storage.root, "r");
      const handle = `/proc/${process.pid}/fd/${fd}`;
      await freeze(handle, true);
      try {
        await copyImage(storage.image, this.image(r.id));
      } finally {
        await freeze(handle, false);
      }
      // Canonical owners in the copy: the sandbox's uid becomes the user's (1000), its block's first root's (0).
      await this.withMount(r, async (at) => {
        await chownTree(at, SANDBOX_UID, storage.hostUid);
        if (storage.rootUid !== null) await chownTree(at, 0, storage.rootUid);
      });
      await this.save(r);
    } catch (err) {
      this.records.delete(r.id);
      await fsp.rm(this.image(r.id), { force: true });
      if (err instanceof HostDiskFull) throw new DaemonError("ResourceLimit", `could not snapshot sandbox ${sandboxId}: ${err.message}`);
      throw this.internal(`could not snapshot sandbox ${sandboxId}`, err);
    } finally {
      if (fd !== null) closeSync(fd);
      this.frozen.delete(sandboxId);
      thawed();
      release();
    }
    this.log.info(`snapshot ${r.id} (${slug}) taken of sandbox ${sandboxId}'s storage`);
    return this.snapshotInfo(r);
  }

  /**
   * A root image `fill` builds, kept as a new snapshot of `owner` (image.build): an empty file
   * system of `capacity`, mounted read-write at a private mount point for `fill`, unmounted, then
   * recorded. The built image is the snapshot's image (no copy). If `fill` (or anything else)
   * fails, nothing is kept: no record, no image, no mount; `fill`'s error is thrown as it was.
   */
  async buildSnapshot(owner: string, slug: string, capacityParam: number | string, build: ImageBuildInfo, fill: (at: string) => Promise<void>): Promise<SnapshotInfo> {
    const capacity = capacityOf(capacityParam);
    this.checkNew(owner, slug);
    const r: VolumeRecord = { kind: "snapshot", id: this.newRecordId("snap"), slug, owner, region: "local", createdAt: new Date().toISOString(), build };
    this.records.set(r.id, r);
    const release = this.hold(r, "being built");
    try {
      await makeImage(this.image(r.id), capacity);
      await this.withMount(r, fill);
      await this.save(r);
    } catch (err) {
      this.records.delete(r.id);
      await fsp.rm(this.image(r.id), { force: true });
      throw err;
    } finally {
      release();
    }
    this.log.info(`snapshot ${r.id} (${slug}) built as a root image: ${build.suite} minbase${build.packages.length ? ` + ${build.packages.join(",")}` : ""}`);
    return this.snapshotInfo(r);
  }

  /**
   * Settles once no snapshot holds the sandbox's storage frozen. Its teardown waits for this:
   * anything that writes to a frozen file system (removing the proxy's socket) would block the
   * daemon's one thread, and with it the thaw.
   */
  thawed(sandboxId: string): Promise<void> {
    return this.frozen.get(sandboxId) ?? Promise.resolve();
  }

  /** The id of `owner`'s snapshot `ref` names, or null (a volume, or nothing: the create reports that). */
  snapshotIdOf(owner: string, ref: string): string | null {
    const r = this.find(owner, ref);
    return r?.kind === "snapshot" ? r.id : null;
  }

  async getSnapshot(owner: string, ref: string): Promise<SnapshotInfo> {
    return this.snapshotInfo(this.lookup(owner, ref, "snapshot"));
  }

  listSnapshots(owner: string, p: ParamsOf<"snapshot.list">) {
    return this.page(owner, "snapshot", p, (r) => this.snapshotInfo(r));
  }

  async deleteSnapshot(owner: string, ref: string): Promise<void> {
    await this.remove(this.lookup(owner, ref, "snapshot"));
  }

  /** Deletes the record first (durably), then the image: a crash in between leaves an orphan image init removes. */
  private async remove(r: VolumeRecord): Promise<void> {
    if (r.kind === "snapshot") {
      // Sandboxes booted ahead from a snapshot are nobody's yet: they go first, and only they.
      const users = [...(this.mounts.get(r.id)?.users ?? [])];
      if (users.length && users.every((id) => this.pooled.hidden(id))) await this.pooled.evict(r.id);
      // Then the mount kept for its next reader.
      await this.unmountIdle(r.id);
    }
    this.refuseIfInUse(r, "delete");
    const release = this.hold(r, "being deleted");
    try {
      await fsp.rm(join(this.dir, `${r.id}.json`), { force: true });
      await this.syncDir();
      this.records.delete(r.id);
      await fsp.rm(this.image(r.id), { force: true });
    } finally {
      release();
    }
    this.log.info(`${r.kind} ${r.id} (${r.slug}) deleted`);
  }

  // ---- sandboxes -----------------------------------------------------------------------

  /**
   * Checks a sandbox's `volumes` and reserves each volume and snapshot it names, all or none.
   * Synchronous: two creates naming the same volume cannot both get it.
   */
  claim(owner: string, volumes: { [path: string]: string }, rootRef?: string): VolumeClaim {
    const entries = Object.entries(volumes);
    for (const [path] of entries) {
      const problem = mountPathProblem(path);
      if (problem) throw invalid(`volumes[${JSON.stringify(path.slice(0, 80))}]`, problem);
    }
    // The home's former name is a bind the supervisor makes after bwrap's mounts, which would hide
    // a volume mounted below it: such a volume is mounted at the same place in the home itself.
    const inHome = (path: string) => (path.startsWith(`${SANDBOX_HOME_ALIAS}/`) ? SANDBOX_HOME + path.slice(SANDBOX_HOME_ALIAS.length) : path);
    const overlap = overlapping(entries.map(([path]) => inHome(path)));
    if (overlap) throw invalid("volumes", `mount paths '${overlap[0]}' and '${overlap[1]}' overlap: one would be inside the other`);
    const wanted = entries.map(([path, ref]) => ({ path: inHome(path), r: this.lookup(owner, ref) }));
    const root = rootRef === undefined ? null : this.lookup(owner, rootRef);
    const unbootable = root && rootKernelProblem(root.kind);
    if (unbootable) throw new DaemonError("Unsupported", unbootable);
    const all = root ? [...wanted, { path: "/", r: root }] : wanted;
    const twice = all.find((w, i) => w.r.kind === "volume" && all.findIndex((o) => o.r.id === w.r.id) !== i);
    if (twice) throw new DaemonError("InUse", `volume '${twice.r.slug}' is named twice: a volume is mounted read-write at one path of one sandbox at a time`);
    for (const { r } of all) {
      if (r.kind === "volume") this.refuseIfInUse(r, "mount");
      else if (this.busy.get(r.id)) throw new DaemonError("InUse", `cannot mount snapshot '${r.slug}': it is ${this.busy.get(r.id)}`);
    }
    const pending = "reserved by a sandbox being created";
    const reserved = all.filter((w) => w.r.kind === "volume");
    for (const { r } of reserved) this.busy.set(r.id, pending);
    const readers: string[] = [];
    let sandbox: string | null = null;
    /** The mount points of the root's view (its idmapped view, then a snapshot's overlay on it), undone in reverse. */
    const rootMounts: string[] = [];
    let released = false;
    let done!: () => void;
    const releasedPromise = new Promise<void>((resolve) => (done = resolve));
    return {
      released: releasedPromise,
      boots: root !== null,
      mount: async (sandboxId, hostUid, storageRoot, rootBase) => {
        sandbox = sandboxId;
        const binds: VolumeBind[] = [];
        const mounts: Mount[] = [];
        for (const { path, r } of all) {
          if (r.kind === "snapshot") {
            mounts.push(await this.mountSnapshot(r, sandboxId));
            readers.push(r.id);
          } else {
            // A root keeps its files' owners as they are on disk (root's are 0); a volume at a path is handed to the sandbox's uid.
            mounts.push(await this.mountVolume(r, sandboxId, path === "/" ? null : hostUid));
            this.busy.delete(r.id);
          }
        }
        wanted.forEach(({ path, r }, i) => binds.push({ path, fd: mounts[i]!.fd, readOnly: r.kind === "snapshot" }));
        if (!root) return { binds, root: null };
        if (rootBase === null) throw new Error("a root needs a block of host uids");
        const at = mounts[mounts.length - 1]!.at;
        const what = `${root.kind} '${root.slug}'`;
        let systemBundle: string;
        let view: RootView;
        try {
          if (root.kind === "volume") {
            // Its mount points are made on the volume as its own files would be: root's, and the home the user's.
            systemBundle = prepareRoot(at, at, { owner: 0, homeOwner: SANDBOX_UID }).systemBundle;
            view = { source: at, target: `${storageRoot}-root`, readOnly: false, overlay: null };
          } else {
            // The snapshot's idmapped view is the lower layer of an overlay whose top, new, is root's (of the block);
            // the mount points go to that top (checked against the snapshot's tree) before both are mounted.
            const layers = await makeLayers(join(storageRoot, "root"), rootBase);
            systemBundle = prepareRoot(at, layers.upper, { owner: rootBase, homeOwner: rootBase + SANDBOX_UID, shift: rootBase }).systemBundle;
            view = { source: at, target: `${storageRoot}-lower`, readOnly: true, overlay: { ...layers, merged: `${storageRoot}-root` } };
          }
          const problem = viewPathProblem(view);
          if (problem) throw new Error(problem);
          // Listed before they exist: the release removes whatever of them there is, mounted or not.
          rootMounts.push(view.target, ...(view.overlay ? [view.overlay.merged] : []));
          for (const point of rootMounts) await fsp.mkdir(point, { mode: 0o755 });
        } catch (err) {
          if (err instanceof RootProblem) throw invalid("root", `${what} cannot be booted: ${err.message}`);
          throw this.internal(`could not boot from ${what}`, err);
        }
        return { binds, root: { view, ownHome: root.kind === "volume", systemBundle } };
      },
      release: async () => {
        if (released) return;
        released = true;
        for (const { r } of reserved) if (this.busy.get(r.id) === pending) this.busy.delete(r.id);
        try {
          if (sandbox === null) return;
          // The overlay and the idmapped view hold the image: they go first.
          for (const at of rootMounts.reverse()) await unmountRootMount(at);
          for (const { r } of all) {
            if (r.kind === "snapshot" && !readers.includes(r.id)) continue;
            await this.unmountFor(r, sandbox).catch((err) => this.log.warn(`could not unmount ${r.kind} ${r.id} after ${sandbox}: ${err.message}`));
          }
        } finally {
          done();
        }
      },
    };
  }

  /**
   * Mounts a volume for one sandbox. `hostUid`: its files are handed to that uid (uid 1000 inside
   * a sandbox of one uid); null (a root): they keep their owners, those a sandbox's uid was handed
   * becoming the user's (1000) again.
   */
  private async mountVolume(r: VolumeRecord, sandboxId: string, hostUid: number | null): Promise<Mount> {
    await this.idle(r);
    const at = join(this.mountDir, r.id);
    try {
      await mountImage(this.image(r.id), at, false);
    } catch (err) {
      throw this.internal(`could not mount volume '${r.slug}'`, err);
    }
    try {
      if (hostUid === null && r.lastUid !== undefined) await this.canonicalizeAt(r, at);
      else if (hostUid !== null && r.lastUid !== hostUid) {
        await chownTree(at, hostUid);
        await this.save({ ...r, lastUid: hostUid });
        r.lastUid = hostUid;
      }
      const mount: Mount = { at, fd: openSync(at, "r"), users: new Set([sandboxId]) };
      this.mounts.set(r.id, mount);
      return mount;
    } catch (err) {
      await unmountImage(at);
      throw this.internal(`could not prepare volume '${r.slug}' for the sandbox`, err);
    }
  }

  private async mountSnapshot(r: VolumeRecord, sandboxId: string): Promise<Mount> {
    clearTimeout(this.lingering.get(r.id));
    this.lingering.delete(r.id);
    // An unmount of its last mount finishes first: one image, one file system.
    await this.unmounting.get(r.id);
    // Readers that come while the first one mounts it wait for that mount.
    let pending = this.mounts.has(r.id) ? Promise.resolve(this.mounts.get(r.id)!) : this.mounting.get(r.id);
    if (!pending) {
      pending = (async () => {
        const at = join(this.mountDir, r.id);
        try {
          await mountImage(this.image(r.id), at, true);
        } catch (err) {
          throw this.internal(`could not mount snapshot '${r.slug}'`, err);
        }
        const mount: Mount = { at, fd: openSync(at, "r"), users: new Set() };
        this.mounts.set(r.id, mount);
        return mount;
      })().finally(() => this.mounting.delete(r.id));
      this.mounting.set(r.id, pending);
    }
    const mount = await pending;
    mount.users.add(sandboxId);
    return mount;
  }

  private async unmountFor(r: VolumeRecord, sandboxId: string): Promise<void> {
    const mount = this.mounts.get(r.id);
    if (!mount || !mount.users.delete(sandboxId) || mount.users.size > 0) return;
    if (r.kind === "snapshot" && !this.closing) {
      // Kept a while: the next sandbox booting from it (or mounting it) skips the loop mount.
      const timer = setTimeout(() => void this.unmountIdle(r.id), SNAPSHOT_LINGER_MS);
      timer.unref();
      this.lingering.set(r.id, timer);
      return;
    }
    this.mounts.delete(r.id);
    closeSync(mount.fd);
    await unmountImage(mount.at);
  }

  /** Unmounts a snapshot no sandbox uses (any more); a mount that found users meanwhile stays. */
  private unmountIdle(id: string): Promise<void> {
    clearTimeout(this.lingering.get(id));
    this.lingering.delete(id);
    const mount = this.mounts.get(id);
    if (!mount || mount.users.size > 0) return this.unmounting.get(id) ?? Promise.resolve();
    this.mounts.delete(id);
    closeSync(mount.fd);
    const done = unmountImage(mount.at).finally(() => this.unmounting.delete(id));
    this.unmounting.set(id, done);
    return done;
  }

  /** Unmounts the snapshots kept mounted for their next reader (the daemon is stopping). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.lingering.keys()].map((id) => this.unmountIdle(id)));
  }

  /** Refuses while the image's file system is still alive elsewhere (a namespace not yet torn down). */
  private async idle(r: VolumeRecord): Promise<void> {
    if (await attached(this.image(r.id))) {
      throw new DaemonError("InUse", `${r.kind} '${r.slug}' is still held by a sandbox that is ending; try again in a moment`);
    }
  }

  /** Gives the files a sandbox's uid was handed back to the user (1000), as they were written. */
  private canonicalize(v: VolumeRecord): Promise<void> {
    return this.withMount(v, (at) => this.canonicalizeAt(v, at));
  }

  /** canonicalize, on the volume mounted at `at`. */
  private async canonicalizeAt(v: VolumeRecord, at: string): Promise<void> {
    await chownTree(at, SANDBOX_UID, v.lastUid);
    const { lastUid: _, ...canonical } = v;
    await this.save(canonical);
    delete v.lastUid;
  }

  /** Runs `fn` with the volume mounted at a private mount point (for the daemon's own setup). */
  private async withMount<T>(r: VolumeRecord, fn: (at: string) => Promise<T>): Promise<T> {
    const at = join(this.mountDir, r.id);
    await mountImage(this.image(r.id), at, false);
    try {
      return await fn(at);
    } finally {
      await unmountImage(at);
    }
  }
}

function capacityOf(value: number | string): number {
  const bytes = parseBytes(value);
  if (bytes < VOLUME_LIMITS.minCapacity || bytes > VOLUME_LIMITS.maxCapacity) {
    throw invalid("capacity", `${bytes} bytes is outside ${VOLUME_LIMITS.minCapacity} (16 MiB) to ${VOLUME_LIMITS.maxCapacity} (1 TiB)`);
  }
  // Whole KiB: resize2fs and the file size agree.
  return Math.floor(bytes / 1024) * 1024;
}
