import { Relay, type Endpoint } from "../streams/relay.js";
import type { Logger } from "../util/log.js";
import type { SandboxLimits } from "./limits.js";
import type { Sandbox } from "./sandbox.js";

export interface PoolOptions {
  /** Sandboxes with default limits always kept ready (config warmPool); 0 turns the pool off. */
  base: number;
  /** The most kept ready, all kinds together, however high demand runs (config warmPoolMax). */
  max: number;
  /** Sandboxes started at once while refilling. */
  parallel: number;
  /** The limits of the sandboxes `base` counts. */
  defaults: SandboxLimits;
  /**
   * What a pooled sandbox must share with a create's limits to serve it: memory and CPU quota
   * are set when it is claimed, the disk and the CPUs it sees are fixed at launch.
   */
  kindOf(limits: SandboxLimits): string;
  launch(limits: SandboxLimits): Promise<Sandbox>;
  /** Ends a pooled sandbox nobody needs any more (demand fell, or it went stale). */
  discard(sb: Sandbox): void;
  /** Whether a pooled sandbox may still be handed out (its /etc is the host's current one); all may if not given. */
  fresh?(sb: Sandbox): boolean;
  log: Logger;
}

/** Creates of one kind this close together count as one burst. */
const BURST_MS = 2_000;
/** How long demand is remembered: a kind's target falls by one each time this passes without a miss. */
const DECAY_MS = 60_000;
/**
 * How long the refill behind a create waits. Starting a sandbox forks several processes (mkfs
 * and mount for the storage stock, bwrap), and each fork of the daemon blocks its event loop for
 * milliseconds: begun at once, they sit between the owner's create reply and its first spawn.
 * Waiting this long lets the calls that usually follow a create straight away go first. A wait
 * already pending is not pushed back, so a stream of creates still refills every REFILL_DELAY_MS.
 */
export const REFILL_DELAY_MS = 25;

interface Kind {
  /** Limits to start its sandboxes with (memory and CPU quota are reset at claim anyway). */
  limits: SandboxLimits;
  target: number;
  /** Creates of this kind in the current burst (each within BURST_MS of the one before). */
  burst: number;
  lastCreate: number;
  /** When the target last rose (or last stepped down). */
  lastMiss: number;
  launching: number;
}

/**
 * Sandboxes started ahead of demand and owned by nobody until `take` hands one out, so
 * `Sandbox.create()` costs milliseconds whatever its limits: a pooled sandbox serves any memory
 * and CPU quota (its cgroup is set at claim) as long as its disk size and the number of CPUs it
 * sees match (its "kind"). The pool sizes itself to demand: a create it cannot serve raises its
 * kind's target to the number of creates in that burst (within `max` for all kinds together; a
 * kind other than the default's only from its second miss within `DECAY_MS`),
 * and a kind's target falls back by one each `DECAY_MS` without a miss, down to `base` for
 * default limits and to nothing for others, the surplus sandboxes ended. Refills start up to
 * `parallel` sandboxes at once.
 */
export class WarmPool {
  private readonly ready: Sandbox[] = [];
  private readonly kinds = new Map<string, Kind>();
  /** Refill workers running; `close` waits for them so no sandbox starts behind its back. */
  private readonly workers = new Set<Promise<void>>();
  private closing = false;
  private readonly decay: NodeJS.Timeout | null = null;
  /** The refill a take scheduled, while it waits (REFILL_DELAY_MS). */
  private refill: NodeJS.Timeout | null = null;

  constructor(private readonly opts: PoolOptions) {
    if (opts.base > 0) {
      this.kinds.set(opts.kindOf(opts.defaults), { limits: opts.defaults, target: opts.base, burst: 0, lastCreate: 0, lastMiss: 0, launching: 0 });
      this.decay = setInterval(() => this.shrink(), DECAY_MS / 4);
      this.decay.unref();
    }
  }

  /** How many sandboxes are ready now. */
  get size(): number {
    return this.ready.length;
  }

  /**
   * A pre-started sandbox of the kind `limits` needs, if there is one (the caller sets its
   * limits); the pool refills behind it. A miss counts as demand for that kind.
   */
  take(limits: SandboxLimits): Sandbox | null {
    if (this.opts.base === 0) return null;
    const key = this.opts.kindOf(limits);
    const kind = this.demanded(key, limits);
    this.dropStale(false);
    const i = this.ready.findIndex((sb) => !sb.stopped && this.opts.kindOf(sb.limits) === key);
    const sb = i >= 0 ? this.ready.splice(i, 1)[0]! : null;
    // A miss: the pool was smaller than this burst of creates; keep as many as the burst held.
    if (!sb) {
      // Limits other than the defaults are demand once they were missed before, lately: a single create of a rare kind starts nothing.
      const again = key === this.opts.kindOf(this.opts.defaults) || Date.now() - kind.lastMiss < DECAY_MS;
      if (again) kind.target = Math.max(kind.target, Math.min(kind.burst, this.opts.max));
      kind.lastMiss = Date.now();
    }
    // A miss is launched cold by the caller, which waits for that anyway: its refill need not wait.
    if (!sb) setImmediate(() => this.fill());
    else this.refill ??= setTimeout(() => {
      this.refill = null;
      void this.fill();
    }, REFILL_DELAY_MS);
    return sb;
  }

  /** A pooled sandbox ended on its own: forget it and start another. */
  forget(sb: Sandbox): void {
    const i = this.ready.indexOf(sb);
    if (i < 0) return;
    this.ready.splice(i, 1);
    setImmediate(() => this.fill());
  }

  /** Ends the ready sandboxes that may no longer be handed out (and starts others in their place). */
  dropStale(refill = true): void {
    const stale = this.ready.filter((sb) => this.opts.fresh && !this.opts.fresh(sb));
    if (stale.length === 0) return;
    for (const sb of stale) {
      this.ready.splice(this.ready.indexOf(sb), 1);
      this.opts.discard(sb);
    }
    this.opts.log.info(`ended ${stale.length} pooled sandboxes started with an /etc the host has since changed`);
    if (refill) setImmediate(() => void this.fill());
  }

  /** Starts refill workers up to `parallel`; resolves when those running now have finished. */
  fill(): Promise<void> {
    while (!this.closing && this.workers.size < this.opts.parallel && this.next()) {
      const worker: Promise<void> = this.work().finally(() => this.workers.delete(worker));
      this.workers.add(worker);
    }
    return Promise.all(this.workers).then(() => {});
  }

  /** Stops refilling and waits for launches in flight; the sandboxes themselves die with the rest. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.decay) clearInterval(this.decay);
    if (this.refill) clearTimeout(this.refill);
    await Promise.all(this.workers);
  }

  /** Counts a create of this kind into its current burst (creates no more than BURST_MS apart). */
  private demanded(key: string, limits: SandboxLimits): Kind {
    const now = Date.now();
    let kind = this.kinds.get(key);
    if (!kind) this.kinds.set(key, (kind = { limits: { ...limits }, target: 0, burst: 0, lastCreate: 0, lastMiss: 0, launching: 0 }));
    kind.burst = now - kind.lastCreate <= BURST_MS ? kind.burst + 1 : 1;
    kind.lastCreate = now;
    return kind;
  }

  /** Ready and starting sandboxes of each kind. */
  private counts(key: string, kind: Kind): number {
    return kind.launching + this.ready.filter((sb) => this.opts.kindOf(sb.limits) === key).length;
  }

  /** The kind to start a sandbox of next: the one furthest below its target, the most recently missed first; null when none is. */
  private next(): [string, Kind] | null {
    const total = this.ready.length + [...this.kinds.values()].reduce((n, k) => n + k.launching, 0);
    if (total >= this.opts.max) return null;
    let best: [string, Kind, number] | null = null;
    for (const [key, kind] of this.kinds) {
      const short = kind.target - this.counts(key, kind);
      if (short > 0 && (!best || short > best[2] || (short === best[2] && kind.lastMiss > best[1].lastMiss))) best = [key, kind, short];
    }
    return best && [best[0], best[1]];
  }

  private async work(): Promise<void> {
    for (let pick = this.next(); pick && !this.closing; pick = this.next()) {
      const [, kind] = pick;
      kind.launching++;
      let sb: Sandbox | null = null;
      try {
        sb = await this.opts.launch(kind.limits);
        await warmUp(sb);
      } catch (err) {
        if (sb) this.opts.discard(sb);
        if (!this.closing) this.opts.log.warn(`could not warm a sandbox: ${(err as Error).message}`);
        return;
      } finally {
        kind.launching--;
      }
      if (sb.stopped) continue;
      if (this.opts.fresh && !this.opts.fresh(sb)) {
        this.opts.discard(sb); // the host's /etc changed while it started
        continue;
      }
      this.ready.push(sb);
      this.opts.log.info(`sandbox ${sb.id} ready in the warm pool`);
    }
  }

  /** Lowers the targets of kinds not missed for DECAY_MS and ends the sandboxes above them. */
  private shrink(): void {
    const now = Date.now();
    const defaults = this.opts.kindOf(this.opts.defaults);
    for (const [key, kind] of this.kinds) {
      const floor = key === defaults ? this.opts.base : 0;
      if (kind.target <= floor || now - kind.lastMiss < DECAY_MS) continue;
      kind.target--;
      kind.lastMiss = now - DECAY_MS / 2; // the next step down waits a while longer
      let surplus = this.counts(key, kind) - kind.target;
      for (let i = 0; i < this.ready.length && surplus > 0; ) {
        if (this.opts.kindOf(this.ready[i]!.limits) !== key) {
          i++;
          continue;
        }
        const [sb] = this.ready.splice(i, 1);
        this.opts.discard(sb!);
        surplus--;
      }
    }
    // Kinds that keep nothing and were not missed lately are forgotten (the map stays as small as recent demand).
    for (const [key, kind] of this.kinds) if (key !== defaults && kind.target === 0 && kind.launching === 0 && now - kind.lastMiss >= DECAY_MS) this.kinds.delete(key);
  }
}

/** One throwaway spawn, with piped output like an owner's, warms the supervisor's spawning path. */
async function warmUp(sb: Sandbox): Promise<void> {
  const discard: Endpoint = { data() {}, end() {}, credit() {}, abort() {}, congestion: () => null };
  const streams = [sb.link.allocStream(), sb.link.allocStream()];
  for (const sid of streams) sb.link.addRelay(sid, new Relay(sb.link.endpoint(sid), discard, () => {}, () => sb.link.removeRelay(sid), sb.link.streams.open()), true);
  const { pid } = (await sb.link.call("process.spawn", { cmd: "/bin/true", env: {}, stdin: null, stdout: streams[0], stderr: streams[1] })) as { pid: number };
  // No client tracks it, so its exit is kept as an early one; wait for it and drop it.
  await new Promise<void>((resolve) => {
    const check = () => (sb.processes.takeUntracked(pid) || sb.stopped ? resolve() : setTimeout(check, 2));
    check();
  });
}
