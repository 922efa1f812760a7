import type { Logger } from "../util/log.js";
import type { SandboxLimits } from "./limits.js";
import type { Sandbox } from "./sandbox.js";

export interface ImagePoolOptions {
  /** Sandboxes kept booted per image (config imageWarmPool); 0 turns this pool off. */
  size: number;
  /** For how many images at once: the ones booted most recently; older ones' sandboxes are ended. */
  images: number;
  /** Whether a pooled sandbox started with `pooled` limits can be held to `wanted` (the main pool's kinds). */
  fits(pooled: SandboxLimits, wanted: SandboxLimits): boolean;
  /** Boots a sandbox owned by nobody yet from `owner`'s snapshot `snapshotId`. */
  launch(owner: string, snapshotId: string, limits: SandboxLimits): Promise<Sandbox>;
  /** Ends a pooled sandbox nobody will take; settles once what it held (the snapshot's mount) is given back. */
  discard(sb: Sandbox, why: string): Promise<void>;
  log: Logger;
}

interface Image {
  owner: string;
  snapshotId: string;
  limits: SandboxLimits;
  ready: Sandbox[];
  launching: number;
  usedAt: number;
}

/**
 * A warm pool per image: sandboxes booted from a snapshot (`root`) ahead of demand, for the owner
 * of that snapshot only, so the next create from the same image is as quick as a pooled default
 * one. An image earns its place by being booted: after each create from it the pool refills it to
 * `size`, for the `images` most recently booted images; deleting the snapshot first ends its
 * pooled sandboxes (they hold its mount), and they never show in its `usedBy`.
 */
export class ImagePool {
  private readonly images = new Map<string, Image>();
  private closing = false;

  constructor(private readonly opts: ImagePoolOptions) {}

  private key(owner: string, snapshotId: string): string {
    return `${owner}\0${snapshotId}`;
  }

  /** Whether `sb` waits in this pool (nobody owns it yet). */
  holds(sandboxId: string): boolean {
    for (const image of this.images.values()) if (image.ready.some((sb) => sb.id === sandboxId)) return true;
    return false;
  }

  /** A ready sandbox of `owner`'s snapshot that can be held to `limits`, or null. */
  take(owner: string, snapshotId: string, limits: SandboxLimits): Sandbox | null {
    const image = this.images.get(this.key(owner, snapshotId));
    if (!image) return null;
    const i = image.ready.findIndex((sb) => !sb.stopped && this.opts.fits(sb.limits, limits));
    if (i < 0) return null;
    return image.ready.splice(i, 1)[0]!;
  }

  /** After a create from the image: keep `size` of it ready (started one at a time, in the background). */
  refill(owner: string, snapshotId: string, limits: SandboxLimits): void {
    if (this.opts.size === 0 || this.closing) return;
    const key = this.key(owner, snapshotId);
    let image = this.images.get(key);
    if (!image) {
      image = { owner, snapshotId, limits, ready: [], launching: 0, usedAt: 0 };
      this.images.set(key, image);
    }
    image.usedAt = Date.now();
    image.limits = limits;
    void this.trim();
    if (image.launching > 0) return;
    const target = image;
    const next = async (): Promise<void> => {
      while (!this.closing && this.images.get(key) === target && target.ready.length < this.opts.size) {
        target.launching++;
        try {
          const sb = await this.opts.launch(owner, snapshotId, target.limits);
          if (this.closing || this.images.get(key) !== target) await this.opts.discard(sb, "its image left the warm pool");
          else {
            target.ready.push(sb);
            this.opts.log.info(`sandbox ${sb.id} ready in the warm pool of snapshot ${snapshotId}`);
          }
        } catch (err) {
          // The snapshot went away, the daemon is full...: no retry until the next create from it.
          this.opts.log.warn(`warm pool for snapshot ${snapshotId}: could not boot a sandbox: ${(err as Error).message}`);
          return;
        } finally {
          target.launching--;
        }
      }
    };
    void next();
  }

  /** Ends the pooled sandboxes of the images beyond the most recently booted `images`. */
  private async trim(): Promise<void> {
    const byUse = [...this.images.entries()].sort(([, a], [, b]) => b.usedAt - a.usedAt);
    for (const [key, image] of byUse.slice(this.opts.images)) {
      this.images.delete(key);
      await Promise.all(image.ready.splice(0).map((sb) => this.opts.discard(sb, "its image left the warm pool")));
    }
  }

  /** Before the snapshot is deleted: ends its pooled sandboxes (of any owner) and waits until they let go of it. */
  async evict(snapshotId: string): Promise<void> {
    const gone: Promise<void>[] = [];
    for (const [key, image] of this.images) {
      if (image.snapshotId !== snapshotId) continue;
      this.images.delete(key);
      gone.push(...image.ready.splice(0).map((sb) => this.opts.discard(sb, "its snapshot is being deleted")));
    }
    await Promise.all(gone);
  }

  /** A pooled sandbox that ended on its own. */
  forget(sb: Sandbox): void {
    for (const image of this.images.values()) {
      const i = image.ready.indexOf(sb);
      if (i >= 0) image.ready.splice(i, 1);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    const all = [...this.images.values()].flatMap((image) => image.ready.splice(0));
    this.images.clear();
    await Promise.all(all.map((sb) => this.opts.discard(sb, "the daemon is stopping")));
  }
}
