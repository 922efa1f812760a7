import type { MethodName, ParamsOf, ResultOf } from "@sbx/protocol";
import { DaemonError } from "../util/errors.js";
import type { CallContext } from "../server/connection.js";
import type { ImageBuilder } from "./build.js";
import type { VolumeStore } from "./store.js";

type VolumeMethod = Extract<MethodName, `volume.${string}` | `snapshot.${string}` | `image.${string}`>;
type Handler<M extends MethodName> = (p: ParamsOf<M>, ctx: { conn: { owner: string; notify: CallContext["conn"]["notify"] } }) => Promise<ResultOf<M>>;

/** Why a rootless daemon has no volumes. */
export const ROOTLESS_VOLUMES =
  "volumes need the daemon in root mode: each is an ext4 image the daemon loop-mounts, and a rootless daemon cannot mount (run the daemon as root)";

/** The daemon's volume, snapshot and image methods; `store` and `images` are null in rootless mode, where each refuses clearly. */
export function volumeHandlers(store: VolumeStore | null, images: ImageBuilder | null = null): { [M in VolumeMethod]: Handler<M> } {
  const s = (): VolumeStore => {
    if (!store) throw new DaemonError("Unsupported", ROOTLESS_VOLUMES);
    return store;
  };
  return {
    "volume.create": (p, ctx) => s().createVolume(ctx.conn.owner, p),
    "volume.get": (p, ctx) => s().getVolume(ctx.conn.owner, p.idOrSlug),
    "volume.list": (p, ctx) => s().listVolumes(ctx.conn.owner, p),
    "volume.delete": async (p, ctx) => (await s().deleteVolume(ctx.conn.owner, p.idOrSlug), null),
    "volume.resize": (p, ctx) => s().resizeVolume(ctx.conn.owner, p.idOrSlug, p.capacity),
    "volume.snapshot": (p, ctx) => s().snapshot(ctx.conn.owner, p.idOrSlug, p.slug),
    "snapshot.get": (p, ctx) => s().getSnapshot(ctx.conn.owner, p.idOrSlug),
    "snapshot.list": (p, ctx) => s().listSnapshots(ctx.conn.owner, p),
    "snapshot.delete": async (p, ctx) => (await s().deleteSnapshot(ctx.conn.owner, p.idOrSlug), null),
    "image.build": async (p, ctx) => {
      if (!images) throw new DaemonError("Unsupported", `root images are volume images: ${ROOTLESS_VOLUMES}`);
      return images.build(ctx.conn.owner, p, (line) => ctx.conn.notify("image.progress", { slug: p.slug, line }));
    },
  };
}
