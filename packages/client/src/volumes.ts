import type { MethodName, ParamsOf, ResultOf } from "@sbx/protocol";
import { Connection } from "./connection.js";
import { VolumeNotFoundError } from "./errors.js";
import type { ConnectOptions } from "./types.js";
import { withoutDenoOptions, type DenoIgnoredOptions } from "./deno-options.js";

/**
 * Volumes and snapshots, named and shaped as in @deno/sandbox 0.13.2: `Volume.create/get`,
 * `Snapshot.create/get`, and the `client.volumes` / `client.snapshots` namespaces of `Client`
 * (deno/client.ts).
 */

type VolumeData = ResultOf<"volume.create">;
type SnapshotData = ResultOf<"volume.snapshot">;

/** What `Volume.create` / `client.volumes.create` take. */
export interface VolumeInit {
  /** 2-32 of a-z, 0-9 and "-" (not first or last, not "--" at positions 3-4); unique among this token's volumes and snapshots. */
  slug: string;
  /** Bytes, or a size string ("1GiB", "500MB"): the file system's size and so the most it holds (16 MiB to 1 TiB). */
  capacity: number | string;
  /** Accepted for @deno/sandbox compatibility and echoed back; a daemon has one region. */
  region?: string;
  /** A snapshot (id or slug) whose contents the new volume starts with. */
  from?: string;
}

/** What `client.volumes.snapshot` / `Snapshot.create` take. */
export interface SnapshotInit {
  slug: string;
}

export interface ListOptions {
  /** Only items whose slug or id contains this. */
  search?: string;
  /** Items per page (1-100, default 30). */
  limit?: number;
  cursor?: string;
}

/** One page of a list, as in @deno/sandbox: `for await` runs through this page and all following ones. */
export interface PaginatedList<T> {
  items: T[];
  hasMore: boolean;
  nextCursor: string | null;
  getNextPage(): Promise<PaginatedList<T> | null>;
  [Symbol.asyncIterator](): AsyncIterableIterator<T>;
}

const PRIVATE = Symbol("sbx.private");

const connectOf = (url?: string, token?: string): ConnectOptions => ({ ...(url !== undefined ? { url } : {}), ...(token !== undefined ? { token } : {}) });

/** Opens a connection for one call and closes it after. */
async function call<M extends MethodName>(options: ConnectOptions, method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
  const conn = await Connection.open(options);
  try {
    return await conn.request(method, params);
  } finally {
    await conn.close();
  }
}

/** null for VolumeNotFound, as @deno/sandbox's `get` answers null for a 404. */
async function orNull<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof VolumeNotFoundError) return null;
    throw err;
  }
}

/** A volume: an ext4 file system of its own that outlives sandboxes, mounted with `Sandbox.create({ volumes: { "/data": slug } })`. */
export class Volume {
  /** @internal */
  constructor(token: symbol, private readonly data: VolumeData) {
    if (token !== PRIVATE) throw new TypeError("Can not construct Volume, use 'Volume.create' instead.");
  }

  /** Create a new volume. Alias for `client.volumes.create()`. */
  static create(options: VolumeInit & ConnectOptions & DenoIgnoredOptions): Promise<Volume> {
    const { url, token, ...init } = withoutDenoOptions({ ...options, region: undefined }, "Volume.create");
    return new Volumes(connectOf(url, token)).create(options.region === undefined ? init : { ...init, region: options.region });
  }

  /** Get volume info by ID or slug (null if this token has none such). Alias for `client.volumes.get()`. */
  static get(idOrSlug: string, options: ConnectOptions & DenoIgnoredOptions = {}): Promise<Volume | null> {
    const { url, token } = withoutDenoOptions(options, "Volume.get");
    return new Volumes(connectOf(url, token)).get(idOrSlug);
  }

  /** "vol_" and 24 random characters ("vol_<prefix>_..." from a daemon with an id prefix, as in a fleet). */
  get id(): string {
    return this.data.id;
  }
  get slug(): string {
    return this.data.slug;
  }
  get region(): string {
    return this.data.region;
  }
  /** The capacity of the volume in bytes. */
  get capacity(): number {
    return this.data.capacity;
  }
  /** Bytes the volume's sparse image occupies on the daemon host's disk. */
  get estimatedAllocatedSize(): number {
    return this.data.estimatedAllocatedSize;
  }
  /** Bytes in use in the volume's file system (its data and the file system's own bookkeeping). */
  get estimatedFlattenedSize(): number {
    return this.data.estimatedFlattenedSize;
  }
  /** Whether it holds a root file system: true for a volume created `from` a root image (`client.images.build`). */
  get isBootable(): boolean {
    return this.data.isBootable;
  }
  /** The snapshot this volume was created from, if any (and it still exists). */
  get baseSnapshot(): { id: string; slug: string } | null {
    return this.data.baseSnapshot ?? null;
  }
  /** The sandbox that has it mounted, or null (beyond @deno/sandbox). */
  get mountedBy(): string | null {
    return this.data.mountedBy;
  }
  get createdAt(): Date {
    return new Date(this.data.createdAt);
  }
  [Symbol.for("nodejs.util.inspect.custom")]() {
    const { id, slug, region, capacity, estimatedAllocatedSize, estimatedFlattenedSize } = this;
    return `Volume ${JSON.stringify({ id, slug, region, capacity, estimatedAllocatedSize, estimatedFlattenedSize })}`;
  }
}

/** A read-only copy of a volume; mount it with `Sandbox.create({ volumes: { "/ref": slug } })` (read-only), or start a volume `from` it. */
export class Snapshot {
  /** @internal */
  constructor(token: symbol, private readonly data: SnapshotData) {
    if (token !== PRIVATE) throw new TypeError("Can not construct Snapshot, use 'Snapshot.create' instead.");
  }

  /** Create a new snapshot of a volume no sandbox has mounted. Alias for `client.volumes.snapshot()`. */
  static create(idOrSlug: string, options: SnapshotInit & ConnectOptions & DenoIgnoredOptions): Promise<Snapshot> {
    const { url, token, slug } = withoutDenoOptions(options, "Snapshot.create");
    return new Volumes(connectOf(url, token)).snapshot(idOrSlug, { slug });
  }

  /** Get snapshot info by ID or slug (null if this token has none such). Alias for `client.snapshots.get()`. */
  static get(idOrSlug: string, options: ConnectOptions & DenoIgnoredOptions = {}): Promise<Snapshot | null> {
    const { url, token } = withoutDenoOptions(options, "Snapshot.get");
    return new Snapshots(connectOf(url, token)).get(idOrSlug);
  }

  /** "snap_" and 24 random characters ("snap_<prefix>_..." from a daemon with an id prefix, as in a fleet). */
  get id(): string {
    return this.data.id;
  }
  get slug(): string {
    return this.data.slug;
  }
  get region(): string {
    return this.data.region;
  }
  /** Bytes the snapshot's image occupies on the daemon host's disk. */
  get allocatedSize(): number {
    return this.data.allocatedSize;
  }
  /** Bytes in use in the snapshot's file system. */
  get flattenedSize(): number {
    return this.data.flattenedSize;
  }
  /** Whether it holds a root file system: true for a root image made by `client.images.build` (or a snapshot of a volume made from one). */
  get isBootable(): boolean {
    return this.data.isBootable;
  }
  /** How a root image was built (Debian suite, packages, mirror), or null for other snapshots (beyond @deno/sandbox). */
  get build(): { suite: string; packages: string[]; mirror: string } | null {
    return this.data.build ? { ...this.data.build, packages: [...this.data.build.packages] } : null;
  }
  /** The sandbox whose writable storage it was taken of (`sandbox.snapshot`), or null (beyond @deno/sandbox). */
  get sandbox(): string | null {
    return this.data.sandbox ?? null;
  }
  /** The volume it was taken of (null once that volume is deleted). */
  get volume(): { id: string; slug: string } | null {
    return this.data.volume ?? null;
  }
  /** Sandboxes that have it mounted read-only (beyond @deno/sandbox). */
  get usedBy(): string[] {
    return [...this.data.usedBy];
  }
  get createdAt(): Date {
    return new Date(this.data.createdAt);
  }
  [Symbol.for("nodejs.util.inspect.custom")]() {
    const { id, slug, region, allocatedSize, flattenedSize } = this;
    return `Snapshot ${JSON.stringify({ id, slug, region, allocatedSize, flattenedSize })}`;
  }
}

/** @internal The Snapshot a daemon answered with (for `sandbox.snapshot`). */
export function snapshotOf(data: SnapshotData): Snapshot {
  return new Snapshot(PRIVATE, data);
}

function paginated<T>(fetchPage: (opts: ListOptions) => Promise<{ items: T[]; nextCursor: string | null }>, opts: ListOptions, page: { items: T[]; nextCursor: string | null }): PaginatedList<T> {
  const getNextPage = async () => (page.nextCursor === null ? null : paginated(fetchPage, opts, await fetchPage({ ...opts, cursor: page.nextCursor })));
  return {
    items: page.items,
    hasMore: page.nextCursor !== null,
    nextCursor: page.nextCursor,
    getNextPage,
    async *[Symbol.asyncIterator]() {
      let current: PaginatedList<T> | null = paginated(fetchPage, opts, page);
      while (current) {
        yield* current.items;
        current = await current.getNextPage();
      }
    },
  };
}

/** `client.volumes`: volume management, as in @deno/sandbox (plus `resize`). */
export class Volumes {
  /** @internal */
  constructor(private readonly options: ConnectOptions) {}

  async create(init: VolumeInit): Promise<Volume> {
    return new Volume(PRIVATE, await call(this.options, "volume.create", init));
  }
  async get(idOrSlug: string): Promise<Volume | null> {
    const data = await orNull(call(this.options, "volume.get", { idOrSlug }));
    return data && new Volume(PRIVATE, data);
  }
  async list(opts: ListOptions = {}): Promise<PaginatedList<Volume>> {
    const fetchPage = async (o: ListOptions) => {
      const page = await call(this.options, "volume.list", o);
      return { items: page.items.map((d) => new Volume(PRIVATE, d)), nextCursor: page.nextCursor };
    };
    return paginated(fetchPage, opts, await fetchPage(opts));
  }
  /** Deletes the volume and its data; refused (InUseError) while a sandbox has it mounted. */
  async delete(idOrSlug: string): Promise<void> {
    await call(this.options, "volume.delete", { idOrSlug });
  }
  /** Grows or shrinks the file system (beyond @deno/sandbox); refused while mounted, or below what the data needs. */
  async resize(idOrSlug: string, capacity: number | string): Promise<Volume> {
    return new Volume(PRIVATE, await call(this.options, "volume.resize", { idOrSlug, capacity }));
  }
  /** Takes a read-only snapshot; refused (InUseError) while a sandbox has the volume mounted. */
  async snapshot(idOrSlug: string, init: SnapshotInit): Promise<Snapshot> {
    return new Snapshot(PRIVATE, await call(this.options, "volume.snapshot", { idOrSlug, slug: init.slug }));
  }
}

/** `client.snapshots`: snapshot management, as in @deno/sandbox. */
export class Snapshots {
  /** @internal */
  constructor(private readonly options: ConnectOptions) {}

  async get(idOrSlug: string): Promise<Snapshot | null> {
    const data = await orNull(call(this.options, "snapshot.get", { idOrSlug }));
    return data && new Snapshot(PRIVATE, data);
  }
  async list(opts: ListOptions = {}): Promise<PaginatedList<Snapshot>> {
    const fetchPage = async (o: ListOptions) => {
      const page = await call(this.options, "snapshot.list", o);
      return { items: page.items.map((d) => new Snapshot(PRIVATE, d)), nextCursor: page.nextCursor };
    };
    return paginated(fetchPage, opts, await fetchPage(opts));
  }
  /** Refused (InUseError) while a sandbox has it mounted or a volume is being made from it. */
  async delete(idOrSlug: string): Promise<void> {
    await call(this.options, "snapshot.delete", { idOrSlug });
  }
}

/** What `client.images.build` takes. */
export interface ImageBuildInit {
  /** The new snapshot's slug (the rules of volume slugs; unique among this token's volumes and snapshots). */
  slug: string;
  /** Debian packages to install beside minbase (at most 256), e.g. ["python3", "git"]; their dependencies come along. */
  packages?: string[];
  /** The Debian suite (default "bookworm"). */
  suite?: "bookworm" | "trixie";
  /** The image's size: bytes or a size string ("4GiB", the default); the most the root holds. */
  capacity?: number | string;
  /** Called with each progress line of the build as it comes ("I: downloading packages with apt..."). */
  onProgress?: (line: string) => void;
}

/**
 * `client.images`: root images (beyond @deno/sandbox, which has no image builder; sbx's own
 * name). A root image is a read-only snapshot with `isBootable` true, built on the daemon host
 * from Debian's packages; it is listed, fetched and deleted as any snapshot (`client.snapshots`).
 */
export class Images {
  /** @internal */
  constructor(private readonly options: ConnectOptions) {}

  /**
   * Builds a root image from Debian's packages (mmdebstrap minbase plus `packages`, from the daemon's
   * mirror): tens of seconds. Root-mode daemons with mmdebstrap installed; a failure leaves nothing behind.
   */
  async build(init: ImageBuildInit): Promise<Snapshot> {
    const { onProgress, ...params } = init;
    const conn = await Connection.open(this.options);
    try {
      const off = onProgress ? conn.on("image.progress", (n) => n.slug === params.slug && onProgress(n.line)) : () => {};
      try {
        return new Snapshot(PRIVATE, await conn.request("image.build", params));
      } finally {
        off();
      }
    } finally {
      await conn.close();
    }
  }

  /** This token's root images (its snapshots with `isBootable`), oldest first. */
  async list(opts: { search?: string } = {}): Promise<Snapshot[]> {
    const all: Snapshot[] = [];
    for await (const s of await new Snapshots(this.options).list({ ...opts, limit: 100 })) if (s.isBootable) all.push(s);
    return all;
  }
}
