import { Type } from "@sinclair/typebox";
import { byteSize, Obj, SandboxId } from "./common.js";

/**
 * Volumes and snapshots, named and shaped after @deno/sandbox 0.13.2 (`client.volumes`,
 * `client.snapshots`, `Volume`, `Snapshot`), with the wire in camelCase like the rest of sbx.
 */

/** Deno's slug rule: 2-32 of a-z, 0-9 and "-", not starting or ending with "-", no "--" at positions 3-4. */
export const SLUG_PATTERN = "^(?=[a-z0-9-]{2,32}$)(?!.{2}--)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$";

export const Slug = Type.String({
  pattern: SLUG_PATTERN,
  description: "Human readable identifier, unique among this token's volumes and snapshots together.",
  errorMessage: 'must be 2-32 characters of a-z, 0-9 and "-", not starting or ending with "-", and without "--" at positions 3 and 4',
});

export const IdOrSlug = Type.String({
  minLength: 1,
  maxLength: 128,
  description: 'A volume\'s id ("vol_...") or slug, or a snapshot\'s ("snap_...").',
});

/** Sizes a volume may have: ext4 needs a few MiB of its own; a terabyte bounds a sparse image. */
export const VOLUME_LIMITS = { minCapacity: 16 * 2 ** 20, maxCapacity: 2 ** 40, perToken: 64 } as const;

const Capacity = byteSize(`Volume size: the file system's size and so the most it holds (${VOLUME_LIMITS.minCapacity / 2 ** 20} MiB to 1 TiB).`);

const ref = (description: string) => Obj({ id: Type.String(), slug: Type.String() }, { description });

/** Debian suites `image.build` can make a root image of (a tenant picks one of these, nothing else). */
export const DEBIAN_SUITES = ["bookworm", "trixie"] as const;

/**
 * Debian policy 5.6.7's package name (a-z, 0-9, "+", "-", "."; at least two; starting with a
 * letter or digit), and not ending in "-", which apt reads as "remove this package".
 */
export const DEBIAN_PACKAGE_PATTERN = "^[a-z0-9][a-z0-9+.-]*[a-z0-9+.]$";

/** What `image.build` takes: at most this many packages, an image of this size unless told. */
export const IMAGE_LIMITS = { maxPackages: 256, defaultCapacity: 4 * 2 ** 30 } as const;

export const ImageBuildInfo = Obj(
  {
    suite: Type.String({ description: "The Debian suite it was built from." }),
    packages: Type.Array(Type.String(), { description: "The packages asked for beside Debian's minbase (the required-priority packages and apt)." }),
    mirror: Type.String({ description: "The Debian mirror the packages came from: the daemon's (config imageMirror), never the caller's." }),
  },
  { description: "How a root image was built (`image.build`); absent on other snapshots." },
);

export const VolumeInfo = Obj(
  {
    id: Type.String({ description: '"vol_" and 24 random characters.' }),
    slug: Type.String(),
    region: Type.String({ description: 'Echoes create\'s region ("local" if none was given); this daemon has one place.' }),
    capacity: Type.Integer({ minimum: 0, description: "The capacity of the volume in bytes." }),
    estimatedAllocatedSize: Type.Integer({ minimum: 0, description: "Bytes the volume's sparse image occupies on the host disk." }),
    estimatedFlattenedSize: Type.Integer({ minimum: 0, description: "Bytes in use in the volume's file system (data and the file system's own)." }),
    isBootable: Type.Boolean({ description: "Whether the volume holds a root file system: true for a volume created `from` a root image (`image.build`), false otherwise." }),
    baseSnapshot: Type.Optional(ref("The snapshot this volume was created from; absent if none.")),
    mountedBy: Type.Union([Type.String(), Type.Null()], { description: "The sandbox that has it mounted read-write, or null." }),
    createdAt: Type.String({ format: "date-time" }),
  },
  { description: "A volume: an ext4 file system of its own that outlives sandboxes." },
);

export const SnapshotInfo = Obj(
  {
    id: Type.String({ description: '"snap_" and 24 random characters.' }),
    slug: Type.String(),
    region: Type.String(),
    allocatedSize: Type.Integer({ minimum: 0, description: "Bytes the snapshot's image occupies on the host disk." }),
    flattenedSize: Type.Integer({ minimum: 0, description: "Bytes in use in the snapshot's file system." }),
    isBootable: Type.Boolean({ description: "Whether it holds a root file system: true for a root image made by `image.build` (and a snapshot of a volume made from one), false otherwise." }),
    build: Type.Optional(ImageBuildInfo),
    volume: Type.Optional(ref("The volume it was taken of; absent once that volume is deleted.")),
    sandbox: Type.Optional(Type.String({ description: "The sandbox whose writable storage (home and /tmp) it was taken of, for sandbox.snapshot." })),
    usedBy: Type.Array(Type.String(), { description: "Sandboxes that have it mounted read-only." }),
    createdAt: Type.String({ format: "date-time" }),
  },
  { description: "A read-only copy of a volume taken while no sandbox had it mounted." },
);

export const ImageBuildParams = Obj({
  slug: Slug,
  packages: Type.Optional(
    Type.Array(
      Type.String({
        pattern: DEBIAN_PACKAGE_PATTERN,
        maxLength: 128,
        errorMessage: 'must be a Debian package name: a-z, 0-9, "+", "-" and ".", at least two, starting with a letter or digit and not ending with "-"',
      }),
      { maxItems: IMAGE_LIMITS.maxPackages, uniqueItems: true, description: `Debian packages to install beside minbase (at most ${IMAGE_LIMITS.maxPackages}), e.g. ["python3", "git"]; their dependencies come along.` },
    ),
  ),
  suite: Type.Optional(Type.Union(DEBIAN_SUITES.map((s) => Type.Literal(s)), { description: `The Debian suite: ${DEBIAN_SUITES.join(" or ")} (default bookworm).`, errorMessage: `must be one of ${DEBIAN_SUITES.join(", ")}` })),
  capacity: Type.Optional(byteSize(`The image's size: its file system's size, so the most the root holds (default ${IMAGE_LIMITS.defaultCapacity / 2 ** 30} GiB; ${VOLUME_LIMITS.minCapacity / 2 ** 20} MiB to 1 TiB).`)),
});

export const ImageProgressNotification = Obj({
  slug: Type.String({ description: "The slug of the image being built (the call's `slug`)." }),
  line: Type.String({ description: "One line of the builder's (mmdebstrap's) progress, e.g. \"I: installing remaining packages inside the chroot...\"." }),
});

export const VolumeCreateParams = Obj({
  slug: Slug,
  capacity: Capacity,
  region: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: "^[a-z0-9-]+$", description: "Accepted for @deno/sandbox compatibility and echoed back; it changes nothing." })),
  from: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: "A snapshot (id or slug) whose contents the new volume starts with." })),
});

export const ListOptions = Obj({
  search: Type.Optional(Type.String({ maxLength: 128, description: "Only items whose slug or id contains this." })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: "Items per page (default 30)." })),
  cursor: Type.Optional(Type.String({ maxLength: 128, description: "nextCursor of the previous page." })),
});

export const VolumeListResult = Obj({ items: Type.Array(VolumeInfo), nextCursor: Type.Union([Type.String(), Type.Null()]) });
export const SnapshotListResult = Obj({ items: Type.Array(SnapshotInfo), nextCursor: Type.Union([Type.String(), Type.Null()]) });
export const IdOrSlugParams = Obj({ idOrSlug: IdOrSlug });
export const VolumeResizeParams = Obj({ idOrSlug: IdOrSlug, capacity: Capacity });
export const VolumeSnapshotParams = Obj({ idOrSlug: IdOrSlug, slug: Slug });
export const SandboxSnapshotParams = Obj({ id: SandboxId, slug: Slug });

/** `sandbox.create`'s `volumes`: mount path inside the sandbox -> volume (read-write) or snapshot (read-only). */
export const VolumeMounts = Type.Record(Type.String({ minLength: 1, maxLength: 1024, pattern: "^[^\\u0000]+$" }), IdOrSlug, {
  additionalProperties: false,
  maxProperties: 16,
  description:
    "Volumes to mount: absolute path inside the sandbox -> volume id or slug (read-write, one sandbox at a time) or snapshot id or slug (read-only). Paths must be normalized and outside /usr, /etc, /proc, /dev, /sys, /.sbx and the other system paths, and not /, /home, /home/user or /tmp themselves.",
  errorMessage: "must map absolute paths to volume or snapshot ids or slugs (at most 16)",
});

/** `sandbox.create`'s `root`: the file system the sandbox starts from instead of the host's /usr. */
export const RootRef = Type.String({
  minLength: 1,
  maxLength: 128,
  description:
    "A volume or snapshot (id or slug) the sandbox boots from instead of the host's /usr and /etc. A snapshot gets a private writable layer on the sandbox's own storage (counted in `disk`, gone with the sandbox); a volume is mounted read-write as / (one sandbox at a time), so what is written anywhere in it, home and /tmp included, persists. Root-mode daemons only.",
});
