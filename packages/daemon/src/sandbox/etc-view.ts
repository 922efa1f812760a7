import { closeSync, openSync, watch, type FSWatcher } from "node:fs";
import * as fsp from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { SYSTEM_BUNDLES } from "../egress/tls/trust.js";
import type { Logger } from "../util/log.js";
import { copyEtc, stampOf, type EtcCopy, type EtcSource } from "./etc-copy.js";

/**
 * The /etc every sandbox booted from the host's /usr gets, bound with one `--ro-bind-fd`: bwrap
 * reads the whole mount table for each bind it makes, so thirty per-entry binds cost more with
 * every live sandbox's mounts. The daemon keeps generations of a copy (etc-copy.ts says what is
 * copied), root's and read-only, in a directory nobody else can list; a change on the host (inotify on every source
 * directory, and every source path's lstat checked again each minute for what inotify cannot
 * see) builds a new generation beside the old and swaps it in for sandboxes started from then on.
 * Sandboxes already running keep theirs: a generation is removed once no sandbox holds it.
 */

/** The files each sandbox gets its own version of (launcher.ts binds them over these empty ones). */
export const ETC_OWN = ["passwd", "group", "hosts"];

/** How long a burst of changes (a package upgrade) settles before the view is rebuilt. */
const SETTLE_MS = 50;
/** How often every source path's lstat is compared, for changes inotify does not report (a mount over one, a lost event). */
const RECHECK_MS = 60_000;
/** Rebuilds one acquire waits for while the host keeps changing, before it takes the latest. */
const MAX_REBUILDS_PER_ACQUIRE = 3;

interface Generation {
  n: number;
  dir: string;
  /** Open on the generation's directory: what bwrap binds (it needs no path to the daemon's state dir). */
  fd: number;
  /** Sandboxes launched with it and not yet gone. */
  refs: number;
  systemBundle: string | null;
  copy: EtcCopy;
}

/** One sandbox's hold on a generation; released when its bwrap has exited. */
export interface EtcLease {
  fd: number;
  /** The system CA bundle's path in this generation (the daemon's bundle is bound over it), if it has one. */
  systemBundle: string | null;
  /** False once a newer generation replaced it (a pooled sandbox holding it is no longer handed out). */
  readonly current: boolean;
  release(): void;
}

export class EtcView {
  private now: Generation | null = null;
  private readonly retired = new Set<Generation>();
  private watchers: FSWatcher[] = [];
  private dirty = false;
  private building: Promise<void> | null = null;
  private settle: NodeJS.Timeout | null = null;
  private readonly recheck: NodeJS.Timeout;
  private next = 1;
  private closed = false;
  private readonly listeners = new Set<() => void>();

  private constructor(
    private readonly dir: string,
    private readonly source: EtcSource,
    private readonly log: Logger,
  ) {
    this.recheck = setInterval(() => this.compare(), RECHECK_MS);
    this.recheck.unref();
  }

  /** Builds the first generation in `dir` (what a predecessor left there is removed: its sandboxes are gone). */
  static async open(dir: string, source: EtcSource, log: Logger): Promise<EtcView> {
    await fsp.rm(dir, { recursive: true, force: true });
    // Nobody else may list it. bwrap, run as the sandbox's uid, gets each generation as an open
    // directory but still resolves its path, so the path must be passable (like the storage's).
    await fsp.mkdir(dir, { recursive: true, mode: 0o711 });
    await fsp.chmod(dir, 0o711);
    const view = new EtcView(dir, source, log);
    try {
      await view.rebuild();
    } catch (err) {
      await view.close();
      throw new Error(`could not prepare the /etc that sandboxes see: ${(err as Error).message}`);
    }
    return view;
  }

  /** The generation of the current generation (1, 2, ...): how many times the view was built. */
  get generation(): number {
    return this.now?.n ?? 0;
  }

  /** Calls `fn` after each rebuild. */
  onChange(fn: () => void): void {
    this.listeners.add(fn);
  }

  /**
   * The current generation for a sandbox about to launch. A change the daemon has seen is built
   * first: no sandbox starts with a view older than what the host had when the daemon last
   * looked. A build that fails fails the launch (the previous view may hold a CA the host removed).
   */
  async acquire(): Promise<EtcLease> {
    if (this.closed) throw new Error("the /etc view is closed");
    if (this.dirty || this.building) await this.refresh();
    const g = this.now!;
    g.refs++;
    let released = false;
    const view = this;
    return {
      fd: g.fd,
      systemBundle: g.systemBundle,
      get current() {
        return view.now === g;
      },
      release: () => {
        if (released) return;
        released = true;
        g.refs--;
        if (g.refs === 0 && this.retired.has(g)) this.drop(g);
      },
    };
  }

  /** Stops watching and removes every generation no sandbox holds (the next start removes the rest). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.recheck);
    if (this.settle) clearTimeout(this.settle);
    for (const w of this.watchers) w.close();
    this.watchers = [];
    await this.building?.catch(() => {});
    if (this.now) this.retire(this.now);
    this.now = null;
  }

  /** Something a generation was built from changed (or may have): rebuild once the burst settles. */
  private changed(): void {
    if (this.closed) return;
    this.dirty = true;
    this.settle ??= setTimeout(() => {
      this.settle = null;
      this.refresh().catch((err: Error) => this.log.warn(`could not rebuild the /etc view after a change on the host (new sandboxes fail until it builds): ${err.message}`));
    }, SETTLE_MS);
  }

  /** Builds while there are changes not yet built (a few rounds at most), one build at a time. */
  private refresh(): Promise<void> {
    this.building ??= (async () => {
      for (let i = 0; this.dirty && !this.closed && i < MAX_REBUILDS_PER_ACQUIRE; i++) {
        this.dirty = false;
        try {
          await this.rebuild();
        } catch (err) {
          this.dirty = true; // the next launch tries again
          throw new Error(`could not rebuild the /etc view: ${(err as Error).message}`);
        }
      }
    })().finally(() => (this.building = null));
    return this.building;
  }

  private async rebuild(): Promise<void> {
    const n = this.next++;
    const tmp = join(this.dir, `.new-${n}`);
    // Named unguessably: nobody else can list the directory, nor name what is in it.
    const dir = join(this.dir, `g${n}-${randomBytes(8).toString("hex")}`);
    await fsp.mkdir(tmp, { mode: 0o700 });
    let fd = -1;
    try {
      const copy = await copyEtc(this.source, tmp);
      for (const name of ETC_OWN) await fsp.writeFile(join(tmp, name), "", { flag: "wx", mode: 0o644 });
      await fsp.chmod(tmp, 0o755);
      await fsp.rename(tmp, dir);
      fd = openSync(dir, "r");
      const systemBundle = await systemBundleIn(dir);
      const g: Generation = { n, dir, fd, refs: 0, systemBundle, copy };
      const old = this.now;
      this.now = g;
      if (old) this.retire(old);
      this.watch(copy.watch);
      // Whatever changed while it was copied, before the watches stood, builds again.
      if (stampOf(copy.visited) !== copy.stamp) this.changed();
      if (old) this.log.info(`rebuilt the /etc view after a change on the host (generation ${n}: ${copy.entries} entries, ${copy.bytes} bytes)`);
      for (const fn of this.listeners) fn();
    } catch (err) {
      if (fd >= 0 && this.now?.fd !== fd) closeSync(fd);
      await fsp.rm(tmp, { recursive: true, force: true }).catch(() => {});
      if (this.now?.dir !== dir) await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
      throw err;
    }
  }

  /** Replaces the watches with those the newest copy asks for. */
  private watch(spec: EtcCopy["watch"]): void {
    const old = this.watchers;
    this.watchers = [];
    for (const [dir, names] of spec) {
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => {
          if (names === null || name === null || names.has(String(name))) this.changed();
        });
        w.on("error", () => this.changed());
        this.watchers.push(w);
      } catch {
        // Not there (now): its lstat is part of the stamp, which the periodic check compares.
      }
    }
    for (const w of old) w.close();
  }

  /** The periodic check: every source path's lstat against the current generation's. */
  private compare(): void {
    const g = this.now;
    if (g && !this.building && !this.dirty && stampOf(g.copy.visited) !== g.copy.stamp) this.changed();
  }

  private retire(g: Generation): void {
    this.retired.add(g);
    if (g.refs === 0) this.drop(g);
  }

  private drop(g: Generation): void {
    this.retired.delete(g);
    closeSync(g.fd);
    fsp.rm(g.dir, { recursive: true, force: true }).catch((err: Error) => this.log.warn(`could not remove an old /etc view ${g.dir}: ${err.message}`));
  }
}

/** The first system CA bundle path under /etc/ssl that is a file in the generation. */
async function systemBundleIn(dir: string): Promise<string | null> {
  for (const path of SYSTEM_BUNDLES) {
    if (!path.startsWith("/etc/ssl/")) continue;
    const st = await fsp.lstat(join(dir, path.slice("/etc/".length))).catch(() => null);
    if (st?.isFile()) return path;
  }
  return null;
}
