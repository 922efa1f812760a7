import type { DaemonEndpoint, Discovery } from "../discovery/discovery.js";
import type { Logger } from "../log.js";
import { Host } from "./host.js";
import { hostPrefixOf } from "./ids.js";
import { assess, type DaemonInfo, type Request } from "./placement.js";

/** Hosts that went away, remembered (bounded) so their sandboxes get "host lost" rather than "not found". */
const LOST_MEMORY = 1024;

export interface FleetOptions {
  operatorToken: string;
  /** How many hosts placement asks for fresh figures before choosing (the rest are fallbacks). */
  placementCandidates: number;
  heartbeatMs: number;
  log: Logger;
}

/** Where a sandbox id leads: a host that is up, one that was lost (and why), or nowhere. */
export type Lookup = { host: Host } | { lost: { label: string; reason: string } } | null;

/**
 * Every daemon discovery reports, by URL and by id prefix. It holds no sandboxes: which host
 * holds one is in the sandbox's id, so replicas of the gateway agree without talking.
 */
export class Fleet {
  private readonly hosts = new Map<string, Host>();
  private readonly byPrefix = new Map<string, Host>();
  private readonly lostPrefixes = new Map<string, { label: string; reason: string }>();
  private readonly lostListeners = new Set<(host: Host, reason: string) => void>();

  constructor(private readonly discovery: Discovery, private readonly opts: FleetOptions) {}

  start(): void {
    this.discovery.start((endpoints) => this.update(endpoints));
  }

  close(): void {
    this.discovery.close();
    for (const host of this.hosts.values()) host.close("the gateway is shutting down");
    this.hosts.clear();
  }

  /** Hosts whose control link is up. */
  up(): Host[] {
    return [...this.hosts.values()].filter((h) => h.state === "up");
  }

  /** Every daemon discovered has been tried once: until then an unknown id prefix may just be one not heard from yet. */
  settled(): boolean {
    return [...this.hosts.values()].every((h) => h.tried);
  }

  /** Daemons discovered but never identified (no id prefix known): a sandbox id nobody claims may be on one of them. */
  unidentified(): number {
    return [...this.hosts.values()].filter((h) => h.prefix === null).length;
  }

  /** Daemons discovered whose control link is not up now: a slug nobody answers for may be on one of them. */
  down(): number {
    return [...this.hosts.values()].filter((h) => h.state !== "up").length;
  }

  describe(): string {
    return `${this.up().length} of ${this.hosts.size} daemons up (${this.discovery.describe()})`;
  }

  /** Runs `listener` whenever a host is lost; returns the function that stops it. */
  onHostLost(listener: (host: Host, reason: string) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** The host holding sandbox `id`, read from its id prefix. */
  lookup(id: string): Lookup {
    const prefix = hostPrefixOf(id);
    if (prefix === null) return null;
    const host = this.byPrefix.get(prefix);
    if (host && host.state === "up") return { host };
    if (host) return { lost: { label: host.label, reason: host.downReason || "not connected yet" } };
    const lost = this.lostPrefixes.get(prefix);
    return lost ? { lost } : null;
  }

  /**
   * Hosts to try for a new sandbox, best first: up to `placementCandidates` hosts taking new
   * sandboxes, picked at random and asked for fresh figures, ordered by load; then the others
   * by their last figures, as fallbacks. `refusals` says why the rest were left out. The first
   * host comes reserved (its `placing` raised, in the same turn as the choice, so concurrent
   * creates see it); the caller lowers it once that host has answered.
   */
  async place(req: Request): Promise<{ order: Host[]; refusals: string[] }> {
    const refusals: string[] = [];
    const eligible = this.eligible(refusals);
    const fresh = await refreshed(eligible.slice(0, this.opts.placementCandidates), refusals);
    // From here to the reservation below nothing waits: concurrent creates see each other's choice.
    const scored: Array<{ host: Host; load: number }> = [];
    for (const { host, info } of fresh) {
      const verdict = assess(info, req, host.placing);
      if ("load" in verdict) scored.push({ host, load: verdict.load });
      else refusals.push(`${host.label}: ${verdict.refused}`);
    }
    scored.sort((a, b) => a.load - b.load);
    const fallbacks: Array<{ host: Host; load: number }> = [];
    for (const host of eligible.slice(this.opts.placementCandidates)) {
      const verdict = host.info ? assess(host.info, req, host.placing) : { refused: "no figures yet" };
      if ("load" in verdict) fallbacks.push({ host, load: verdict.load });
      else refusals.push(`${host.label}: ${verdict.refused}`);
    }
    fallbacks.sort((a, b) => a.load - b.load);
    const order = [...scored, ...fallbacks].map((s) => s.host);
    if (order[0]) order[0].placing++;
    return { order, refusals };
  }

  /**
   * Hosts for a new volume or image, best first: every host up, ready and not draining, asked
   * for fresh figures, the most free disk first (a volume is a file on its host's disk; the daemon
   * itself refuses one that does not fit), ties in random order (hosts sharing a disk). `refusals`
   * says why the rest were left out.
   */
  async placeVolume(): Promise<{ order: Host[]; refusals: string[] }> {
    const refusals: string[] = [];
    const open = (await refreshed(this.eligible(refusals), refusals)).filter(({ host, info }) => !info.draining || (refusals.push(`${host.label}: draining`), false));
    open.sort((a, b) => b.info.capacity.disk.freeBytes - a.info.capacity.disk.freeBytes);
    return { order: open.map((f) => f.host), refusals };
  }

  /** Hosts up and ready, in random order; why each other one is out goes to `refusals`. */
  private eligible(refusals: string[]): Host[] {
    const eligible: Host[] = [];
    for (const h of this.hosts.values()) {
      if (h.state !== "up") refusals.push(`${h.label}: ${h.downReason || "connecting"}`);
      else if (!h.endpoint.ready) refusals.push(`${h.label}: not ready (Kubernetes)`);
      else eligible.push(h);
    }
    shuffle(eligible);
    return eligible;
  }

  /** Replaces the set of daemons with what discovery reports now. */
  private update(endpoints: DaemonEndpoint[]): void {
    const seen = new Set<string>();
    for (const endpoint of endpoints) {
      seen.add(endpoint.url);
      const known = this.hosts.get(endpoint.url);
      if (known) {
        if (known.endpoint.ready !== endpoint.ready) {
          this.opts.log.info(`daemon ${known.label} ${endpoint.ready ? "is ready again: it gets new sandboxes" : "is not ready (or terminating): it gets no new sandboxes; its own stay reachable"}`);
        }
        known.endpoint = endpoint;
        continue;
      }
      const host = new Host(endpoint, this.opts.operatorToken, { onUp: (h) => this.onUp(h), onLost: (h, r) => this.onLost(h, r) }, this.opts.log, this.opts.heartbeatMs);
      this.hosts.set(endpoint.url, host);
      this.opts.log.info(`daemon ${host.label} discovered`);
      host.connect();
    }
    for (const [url, host] of this.hosts) {
      if (seen.has(url)) continue;
      this.hosts.delete(url);
      host.close("it is no longer listed by discovery (its pod or node went away)");
      this.forget(host);
      this.opts.log.info(`daemon ${host.label} removed`);
    }
  }

  private onUp(host: Host): void {
    const prefix = host.prefix!;
    const holder = this.byPrefix.get(prefix);
    if (holder && holder !== host && holder.state === "up") {
      this.opts.log.error(`daemon ${host.label} is not used: its id prefix '${prefix}' is already the prefix of ${holder.label}; give each daemon its own --id-prefix`);
      host.close(`its id prefix '${prefix}' is already used by ${holder.label}`);
      return;
    }
    for (const [p, h] of this.byPrefix) if (h === host && p !== prefix) this.byPrefix.delete(p);
    this.byPrefix.set(prefix, host);
    this.lostPrefixes.delete(prefix);
    this.opts.log.info(`daemon ${host.label} up: sandbox ids sbx_${prefix}_..., ${host.info!.capacity.sandboxes.live} sandboxes${host.info!.draining ? ", draining" : ""}`);
  }

  private onLost(host: Host, reason: string): void {
    for (const l of [...this.lostListeners]) l(host, reason);
  }

  /** A host discovery dropped: its prefix now answers "host lost" from memory. */
  private forget(host: Host): void {
    for (const [p, h] of this.byPrefix) {
      if (h !== host) continue;
      this.byPrefix.delete(p);
      this.lostPrefixes.set(p, { label: host.label, reason: host.downReason });
      if (this.lostPrefixes.size > LOST_MEMORY) this.lostPrefixes.delete(this.lostPrefixes.keys().next().value!);
    }
  }
}

/** Fresh figures (daemon.info) of `hosts`, in their order; a host that does not answer within 2 s goes to `refusals`. */
async function refreshed(hosts: Host[], refusals: string[]): Promise<Array<{ host: Host; info: DaemonInfo }>> {
  const fresh = await Promise.all(
    hosts.map((host) =>
      host.refresh(2000).then(
        (info) => ({ host, info }),
        (err: Error) => (refusals.push(`${host.label}: ${err.message}`), null),
      ),
    ),
  );
  return fresh.filter((f) => f !== null);
}

function shuffle<T>(a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
}
