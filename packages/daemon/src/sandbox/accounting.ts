import { join } from "node:path";
import { DaemonError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import { DEFAULT_PERIOD_MS, type TenantQuotas } from "../server/tenants.js";
import type { Usage } from "./usage.js";
import { UsageStore, type RunningRecord, type UsageRecord } from "./usage-store.js";
import { UsageLedger } from "./ledger.js";
import type { Sandbox, SandboxLimits } from "./sandbox.js";

const MIB = 1024 * 1024;
/** How long the final usage of an ended sandbox stays readable (across daemon restarts). */
const FINISHED_TTL_MS = 24 * 3_600_000;
/** Running sandboxes' usage is saved every this many sampler ticks (seconds). */
const SAVE_RUNNING_EVERY = 5;

export interface TenantDirectory {
  nameOf(owner: string): string;
  quotasOf(owner: string): TenantQuotas;
  /** How far back the longest quota period looks. */
  horizonMs: number;
}

/**
 * What sandboxes use, for their owners, the operator's bill and the tenants' quotas: samples
 * every live sandbox each second, keeps the final figures of ended ones for a day (on disk, so a
 * restarted daemon still answers), appends each ended sandbox to the ledger, and saves running
 * totals every few seconds so a daemon killed outright loses at most those seconds.
 */
export class Accounting {
  /** Final usage of ended sandboxes, by id. */
  private readonly finished = new Map<string, UsageRecord>();
  private readonly store: UsageStore;
  private readonly ledger: UsageLedger;
  private readonly sampler: NodeJS.Timeout;
  /** What ended sandboxes used since this daemon started, by tenant (for the metrics). */
  private readonly endedTotals = new Map<string, { cpuSeconds: number; gbSeconds: number }>();

  constructor(
    stateDir: string,
    private readonly tenants: TenantDirectory,
    private readonly live: () => Iterable<Sandbox>,
    log: Logger,
  ) {
    this.store = new UsageStore(join(stateDir, "usage"), FINISHED_TTL_MS, log);
    this.ledger = new UsageLedger(join(stateDir, "usage", "ledger.jsonl"), tenants.horizonMs, log);
    let ticks = 0;
    this.sampler = setInterval(() => {
      for (const sb of this.live()) if (!sb.stopped) sb.meter.sample();
      if (++ticks % SAVE_RUNNING_EVERY === 0) this.saveRunning();
    }, 1000).unref();
  }

  /** Reads what a previous daemon left: final records, the ledger, and running totals it never finished (now ledger entries). */
  async init(): Promise<void> {
    const { records, leftovers } = await this.store.init();
    for (const [id, record] of records) this.finished.set(id, record);
    this.ledger.load();
    for (const [id, r] of leftovers) {
      const createdAt = r.createdAt ?? new Date(r.at - r.usage.wallSeconds * 1000).toISOString();
      this.ledger.append({ tenant: r.tenant ?? this.tenants.nameOf(r.owner), owner: r.owner, id, createdAt, endedAt: new Date(r.at).toISOString(), ...r.usage });
    }
  }

  /** The final figures of a sandbox of `owner`'s that ended in the last day, if there is one. */
  finalUsage(owner: string, id: string): Usage | null {
    const done = this.finished.get(id);
    return done && done.owner === owner ? done.usage : null;
  }

  /** The sandbox is stopping: its figures are frozen now, so they are readable the moment kill returns. */
  stopping(sb: Sandbox): void {
    if (sb.owner) this.keepFinal(sb.id, { owner: sb.owner, usage: sb.meter.finish(), at: Date.now() });
  }

  /** The sandbox ended (bwrap exited): its last figures are kept and go in the ledger. Returns them. */
  ended(sb: Sandbox): Usage {
    const usage = sb.meter.finish();
    const now = Date.now();
    const expired = [...this.finished].filter(([, f]) => now - f.at > FINISHED_TTL_MS).map(([id]) => id);
    for (const id of expired) this.finished.delete(id);
    if (expired.length) void this.store.prune(expired);
    if (sb.owner) {
      const tenant = this.tenants.nameOf(sb.owner);
      this.keepFinal(sb.id, { owner: sb.owner, usage, at: now });
      this.ledger.append({ tenant, owner: sb.owner, id: sb.id, createdAt: sb.handedOutAt.toISOString(), endedAt: new Date(now).toISOString(), ...usage });
      const t = this.endedTotals.get(tenant) ?? { cpuSeconds: 0, gbSeconds: 0 };
      t.cpuSeconds += usage.cpuSeconds;
      t.gbSeconds += usage.memoryGbSeconds;
      this.endedTotals.set(tenant, t);
    }
    return usage;
  }

  /** Each tenant's CPU- and GB-seconds since this daemon started: ended sandboxes' final figures plus running ones' as of their last sample. */
  tenantUsage(): Map<string, { cpuSeconds: number; gbSeconds: number }> {
    const out = new Map([...this.endedTotals].map(([t, u]) => [t, { ...u }]));
    // Stopping sandboxes too: their figures are frozen, and they reach endedTotals only when they end.
    for (const sb of this.live()) {
      if (!sb.owner) continue;
      const tenant = this.tenants.nameOf(sb.owner);
      // As of the last sample: a scrape reads no cgroup file, however many sandboxes run.
      const now = sb.meter.sampled();
      const t = out.get(tenant) ?? { cpuSeconds: 0, gbSeconds: 0 };
      t.cpuSeconds += now.cpuSeconds;
      t.gbSeconds += now.memoryGbSeconds;
      out.set(tenant, t);
    }
    return out;
  }

  /** Refuses a sandbox the tenant's quotas (config tenants[].quotas) do not leave room for, saying which. */
  checkQuotas(owner: string, limits: SandboxLimits): void {
    const q = this.tenants.quotasOf(owner);
    const tenant = this.tenants.nameOf(owner);
    const mine = [...this.live()].filter((sb) => sb.owner === owner && !sb.stopped);
    const refuse = (what: string) => new DaemonError("ResourceLimit", `tenant ${tenant}: ${what}`);
    if (q.sandboxes !== undefined && mine.length >= q.sandboxes) throw refuse(`${mine.length} live sandboxes, its quota (quotas.sandboxes: ${q.sandboxes})`);
    if (q.memoryBytes !== undefined) {
      const memory = mine.reduce((sum, sb) => sum + sb.limits.memoryBytes, 0) + limits.memoryBytes;
      if (memory > q.memoryBytes) throw refuse(`its sandboxes' memory would add up to ${Math.round(memory / MIB)} MiB, over its quota of ${Math.round(q.memoryBytes / MIB)} MiB (quotas.memory)`);
    }
    if (q.cpuSeconds === undefined && q.gbSeconds === undefined) return;
    const periodMs = q.periodMs ?? DEFAULT_PERIOD_MS;
    const used = this.ledger.usedSince(owner, Date.now() - periodMs);
    // Stopping sandboxes count too: killed but not yet ended, they are in neither `mine` nor the ledger.
    for (const sb of this.live()) {
      if (sb.owner !== owner) continue;
      const now = sb.meter.current();
      used.cpuSeconds += now.cpuSeconds;
      used.gbSeconds += now.memoryGbSeconds;
    }
    const period = `${Math.round(periodMs / 3_600_000)}h`;
    if (q.cpuSeconds !== undefined && used.cpuSeconds >= q.cpuSeconds) throw refuse(`used ${used.cpuSeconds.toFixed(1)} CPU-seconds in the last ${period}, its quota is ${q.cpuSeconds} (quotas.cpuSeconds)`);
    if (q.gbSeconds !== undefined && used.gbSeconds >= q.gbSeconds) throw refuse(`used ${used.gbSeconds.toFixed(1)} GB-seconds of memory in the last ${period}, its quota is ${q.gbSeconds} (quotas.gbSeconds)`);
  }

  /** Stops sampling. Every sandbox ended and wrote its final record: no running totals are left to recover. */
  close(): void {
    clearInterval(this.sampler);
    this.store.writeRunning(new Map());
  }

  private keepFinal(id: string, record: UsageRecord): void {
    this.finished.set(id, record);
    this.store.writeFinal(id, record);
  }

  /** Every owned running sandbox's totals so far, on disk: what a restarted daemon reports if this one is killed. */
  private saveRunning(): void {
    const running = new Map<string, RunningRecord>();
    for (const sb of this.live()) {
      if (sb.owner && !sb.stopped) running.set(sb.id, { owner: sb.owner, tenant: this.tenants.nameOf(sb.owner), createdAt: sb.handedOutAt.toISOString(), usage: sb.meter.current() });
    }
    this.store.writeRunning(running);
  }
}
