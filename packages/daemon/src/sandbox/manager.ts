import { constants as osConstants, totalmem, availableParallelism } from "node:os";
import { closeSync, readFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { AllowList } from "../egress/allowlist.js";
import { AllowNetError } from "../egress/errors.js";
import { releaseFd, startSandboxEgress, stopSandboxEgress, type SandboxEgress } from "../egress/endpoint.js";
import type { DecideOptions } from "../egress/policy.js";
import type { InterceptTls } from "../egress/proxy.js";
import type { EgressShared } from "../egress/limits.js";
import { SecretSet, SecretSpecError } from "../egress/secrets.js";
import { SECRETS_TRUST_ENV } from "../egress/trust.js";
import { customAlphabet } from "nanoid";
import type { ParamsOf } from "@sbx/protocol";
import { DaemonError, invalid } from "../util/errors.js";
import { LogBudget } from "../util/log.js";
import type { Logger } from "../util/log.js";
import { parseBytes, parseDuration } from "../util/units.js";
import { SupervisorLink } from "./instance.js";
import { launch, openSandboxFiles } from "./launcher.js";
import { startReaper } from "./reaper.js";
import { WarmPool } from "./pool.js";
import { acquireResources, type SandboxResources } from "./resources.js";
import { reclaimStorage } from "./storage.js";
import { UsageMeter, type Usage } from "./usage.js";
import { UsageStore, type UsageRecord } from "./usage-store.js";
import type { CgroupDriver } from "../cgroups/cgroups.js";
import { SandboxRecords } from "./records.js";
import { Sandbox, type Client, type SandboxLimits } from "./sandbox.js";
import { UidPool } from "./uids.js";
import { DiskBudget, type DiskPolicy } from "./disk-budget.js";
import { execSizeProblem } from "./exec-size.js";

const newId = customAlphabet("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 24);
const MIB = 1024 * 1024;
const MAX_TIMEOUT_MS = 7 * 24 * 3_600_000;

export interface ManagerOptions {
  stateDir: string;
  bwrapPath: string;
  nodePath: string;
  supervisorPath: string;
  preloadPath: string;
  preloadImplPath: string;
  /** Host uids this daemon claimed for its sandboxes (root mode); null in rootless mode. */
  uids: { base: number; count: number } | null;
  sessionGraceMs: number;
  maxSandboxesPerOwner: number;
  /** cgroup driver in root mode; null where cgroups are not used (rootless). */
  cgroups: CgroupDriver | null;
  /** Name pins and the daemon's API address, shared by every sandbox's egress proxy. */
  egress: DecideOptions;
  /** The daemon-wide side of every proxy's bounds (connections, held bytes, decoding) and the host's addresses. */
  egressShared: EgressShared;
  /** The daemon's CA and upstream trust for intercepting secret hosts, and the trust files every sandbox binds. */
  tls: InterceptTls & { bundleFd: number; systemBundleFd: number; caFd: number };
  /** The compiled seccomp program for every sandbox. */
  seccomp: Buffer;
  pidsPerSandbox: number;
  openFilesPerProcess: number;
  /** Default-limit sandboxes kept started ahead of demand. */
  warmPool: number;
  /** How long a call to a sandbox may wait before its supervisor must prove it still answers. */
  stallMs: number;
  /** What the daemon promises about sandboxes' disks (root mode). */
  disk: DiskPolicy;
  /** Put in every sandbox id after "sbx_" (config idPrefix), so a fleet gateway routes by id. */
  idPrefix?: string | null;
  log: Logger;
}

/** Lines one sandbox's egress may put in the daemon's log per minute, per kind (refused secrets, proxy failures). */
const EGRESS_LINES_PER_MINUTE = 100;

/** A log writer that keeps to the budget, saying once how many `what` it held back. */
function budgeted(write: (message: string) => void, what: string): (message: string) => void {
  const budget = new LogBudget(EGRESS_LINES_PER_MINUTE, 60_000);
  return (message) => {
    const line = budget.take();
    if (line.suppressed > 0) write(`${line.suppressed} more ${what} were not logged`);
    if (line.allowed) write(message);
  };
}

/** How long the final usage of an ended sandbox stays readable (across daemon restarts). */
const FINISHED_TTL_MS = 24 * 3_600_000;
/** Running sandboxes' usage is saved every this many sampler ticks (seconds). */
const SAVE_RUNNING_EVERY = 5;

/** Owns every sandbox of one daemon: creation, lookup by owner, timeouts, teardown. */
export class SandboxManager {
  private readonly sandboxes = new Map<string, Sandbox>();
  private readonly uids: UidPool | null;
  private readonly records: SandboxRecords;
  private readonly log: Logger;
  private readonly files: ReturnType<typeof openSandboxFiles>;
  /** Teardowns still running (unmounting storage, removing records). */
  private readonly cleanups = new Set<Promise<void>>();
  /** Final usage of ended sandboxes, by id. */
  private readonly finished = new Map<string, UsageRecord>();
  private readonly usageStore: UsageStore;
  private readonly sampler: NodeJS.Timeout;
  /** Started sandboxes nobody owns yet, handed out by create(). */
  private readonly pool: WarmPool;
  /** Root mode: the promises sandboxes' disk caps make against the state dir's free space. */
  private readonly disk: DiskBudget | null;

  constructor(private readonly opts: ManagerOptions) {
    this.log = opts.log;
    this.files = openSandboxFiles(opts);
    this.pool = new WarmPool(opts.warmPool, () => this.launchSandbox(this.limitsOf({})), opts.log);
    let ticks = 0;
    this.sampler = setInterval(() => {
      for (const sb of this.sandboxes.values()) if (!sb.stopped) sb.meter.sample();
      if (++ticks % SAVE_RUNNING_EVERY === 0) this.saveRunningUsage();
    }, 1000).unref();
    this.usageStore = new UsageStore(join(opts.stateDir, "usage"), FINISHED_TTL_MS, opts.log);
    this.uids = opts.uids === null ? null : new UidPool(opts.uids.base, opts.uids.count);
    this.disk = opts.uids === null ? null : new DiskBudget(this.mountDir, opts.disk, opts.log);
    this.records = new SandboxRecords(join(opts.stateDir, "sandboxes"), opts.log);
  }

  async init(): Promise<void> {
    // Kill leftovers first, then detach their storage.
    await this.records.init();
    for (const [id, record] of await this.usageStore.init()) this.finished.set(id, record);
    if (this.uids) {
      await fsp.mkdir(this.mountDir, { recursive: true, mode: 0o711 });
      await fsp.chmod(this.mountDir, 0o711);
      const detached = await reclaimStorage(this.mountDir);
      if (detached > 0) this.log.info(`detached ${detached} storage mounts left by a previous daemon`);
      const cgroups = (await this.opts.cgroups?.reclaim()) ?? 0;
      if (cgroups > 0) this.log.info(`removed ${cgroups} cgroups left by a previous daemon`);
      startReaper(this.mountDir, this.opts.cgroups?.baseDirs ?? []);
      this.disk!.describe();
      this.disk!.watch();
    }
    void this.pool.fill();
  }

  /** Every live sandbox's disk cap and image (pooled ones included: they were promised too). */
  private diskClaims(except?: Sandbox) {
    return [...this.sandboxes.values()].filter((sb) => sb !== except && !sb.stopped && sb.resources.storage).map((sb) => ({ cap: sb.limits.diskBytes, image: sb.resources.storage!.image }));
  }

  /** What the owner of `sb` should know about limits this daemon cannot keep as asked. */
  private warningsFor(sb: Sandbox, p: ParamsOf<"sandbox.create">): string[] {
    if (this.disk) return this.disk.warnings(sb.limits.diskBytes, this.diskClaims(sb));
    // Rootless: no cgroups, so memory, CPU and process counts are not limits at all here.
    const unenforced = (["memory", "cpus"] as const).filter((k) => p[k] !== undefined);
    const out = unenforced.map((k) => `${k}: not enforced: this daemon runs rootless (without cgroups), so ${k} ${JSON.stringify(p[k])} is not a limit here; run the daemon as root for enforced limits`);
    if (p.disk !== undefined) out.push(`disk: approximate: rootless sandboxes keep /home/user and /tmp in memory (tmpfs), each capped at ${JSON.stringify(p.disk)}`);
    return out;
  }

  /** Rootless mode's place for proxy sockets (root mode keeps them beside the storage mounts). */
  private get runDir(): string {
    return join(this.opts.stateDir, "run");
  }

  /** Replaces a sandbox's allow-list; connections it no longer allows are closed. */
  setAllowNet(client: Client, id: string, allowNet: string[]): void {
    const sb = this.get(client.owner, id);
    sb.egress.proxy.setAllowList(parseAllowNet([...allowNet, ...sb.secretHosts]));
  }

  egressLog(client: Client, id: string, limit?: number) {
    return this.get(client.owner, id).egress.journal.log(limit);
  }

  watchNetwork(client: Client, id: string, enabled: boolean): void {
    const sb = this.get(client.owner, id);
    if (enabled) sb.networkWatchers.add(client);
    else sb.networkWatchers.delete(client);
  }

  /** Where root mode mounts each sandbox's storage; traversable (not listable) by sandbox uids. */
  private get mountDir(): string {
    return join(this.opts.stateDir, "mnt");
  }

  /** Closes the trust files every sandbox binds (after shutdown). */
  closeFiles(): void {
    for (const fd of [this.opts.tls.bundleFd, this.opts.tls.systemBundleFd, this.opts.tls.caFd]) {
      try {
        closeSync(fd);
      } catch {
        // Already closed.
      }
    }
  }

  get size(): number {
    return this.sandboxes.size;
  }

  /** The caps of every live sandbox handed out to a token (fleet capacity; the warm pool is not counted). */
  owned(): SandboxLimits[] {
    return [...this.sandboxes.values()].filter((sb) => sb.owner && !sb.stopped).map((sb) => sb.limits);
  }

  /** The sandbox `id` if `owner` may use it; otherwise SandboxNotFound (never revealing it exists). */
  get(owner: string, id: string): Sandbox {
    const sb = this.sandboxes.get(id);
    if (!sb || sb.owner !== owner || sb.stopped) throw new DaemonError("SandboxNotFound", `no running sandbox '${id.slice(0, 128)}'`);
    return sb;
  }

  list(owner: string, labels: Record<string, string> = {}) {
    return [...this.sandboxes.values()]
      .filter((sb) => sb.owner === owner && !sb.stopped && Object.entries(labels).every(([k, v]) => sb.labels[k] === v))
      .map((sb) => sb.info());
  }

  async create(client: Client, p: ParamsOf<"sandbox.create">): Promise<{ sandbox: Sandbox; warnings: string[] }> {
    const limits = this.limitsOf(p);
    const tooBig = execSizeProblem([], p.env ?? {});
    if (tooBig) throw invalid(tooBig.field, tooBig.message);
    const secrets = secretsOf(p);
    // A secret's hosts are always reachable: its placeholder would be useless otherwise.
    const allowList = parseAllowNet([...(p.allowNet ?? []), ...secrets.hostEntries]);
    const timeoutMs = p.timeout && p.timeout !== "session" ? parseDuration(p.timeout) : null;
    if (timeoutMs !== null && (timeoutMs < 1000 || timeoutMs > MAX_TIMEOUT_MS)) throw invalid("timeout", "must be between 1s and 168h");
    const owned = [...this.sandboxes.values()].filter((sb) => sb.owner === client.owner).length;
    if (owned >= this.opts.maxSandboxesPerOwner) {
      throw new DaemonError("ResourceLimit", `this token already has ${owned} sandboxes, the most the daemon allows (maxSandboxesPerToken)`);
    }

    const warm = this.pool.take(limits);
    const sb = warm ?? (await this.launchSandbox(limits));
    sb.egress.proxy.setAllowList(allowList);
    sb.egress.proxy.setSecrets(secrets);
    sb.secretHosts = secrets.hostEntries;
    if (!secrets.empty) sb.baseEnv = SECRETS_TRUST_ENV;
    for (const [k, v] of Object.entries(secrets.env)) sb.env.set(k, v);
    sb.owner = client.owner;
    sb.labels = { ...(p.labels ?? {}) };
    for (const [k, v] of Object.entries(p.env ?? {})) sb.env.set(k, v);
    sb.meter.rebase();
    sb.attached.add(client);
    if (timeoutMs === null) sb.session = client;
    else this.setExpiry(sb, Date.now() + timeoutMs);
    const { hostUid, cgroup } = sb.resources;
    this.log.info(
      `sandbox ${sb.id} started${warm ? " from the warm pool" : ""} (host uid ${hostUid ?? process.getuid?.()}, bwrap pid ${sb.proc.pid}${cgroup ? `, cgroup v${this.opts.cgroups!.version}` : ""})`,
    );
    return { sandbox: sb, warnings: this.warningsFor(sb, p) };
  }

  /** Starts a sandbox that belongs to nobody yet (owner ""): no token can see it until it is handed out. */
  private async launchSandbox(limits: SandboxLimits): Promise<Sandbox> {
    const id = `sbx_${this.opts.idPrefix ? `${this.opts.idPrefix}_` : ""}${newId()}`;
    this.disk?.admit(limits.diskBytes, this.diskClaims());
    let resources: SandboxResources;
    try {
      resources = await acquireResources(
        { uids: this.uids, cgroups: this.opts.cgroups, mountDir: this.mountDir, pidsPerSandbox: this.opts.pidsPerSandbox, reserveDisk: this.opts.disk.reserve },
        id,
        limits,
      );
    } catch (err) {
      throw new DaemonError("InternalError", `could not set up the sandbox's host resources: ${(err as Error).message}`);
    }
    const { hostUid, storage, cgroup } = resources;
    let egress: SandboxEgress;
    try {
      // Root mode keeps the socket on the sandbox's own storage file system.
      egress = await startSandboxEgress(storage ? join(storage.root, "run") : join(this.runDir, id), hostUid, this.opts.egress, this.opts.egressShared, this.opts.tls);
    } catch (err) {
      await resources.release();
      throw new DaemonError("InternalError", `could not start the sandbox's egress proxy: ${(err as Error).message}`);
    }
    const proc = launch({
      egressDirFd: egress.socketDirFd,
      bwrapPath: this.opts.bwrapPath,
      hostUid,
      tmpfsBytes: limits.diskBytes,
      storage,
      nodeFd: this.files.nodeFd,
      supervisorFd: this.files.supervisorFd,
      preloadFd: this.files.preloadFd,
      preloadImplFd: this.files.preloadImplFd,
      trustBundleFd: this.opts.tls.bundleFd,
      trustSystemBundleFd: this.opts.tls.systemBundleFd,
      trustCaFd: this.opts.tls.caFd,
      seccomp: this.opts.seccomp,
      cgroupProcs: cgroup?.procsFiles ?? [],
      // RLIMIT_NPROC counts per real uid: a per-sandbox bound only where each sandbox has its own uid.
      rlimits: { nofile: this.opts.openFilesPerProcess, nproc: hostUid !== null ? this.opts.pidsPerSandbox : null },
      hostname: "sbx",
    });
    releaseFd(egress);
    const link = new SupervisorLink(proc, this.log, id, this.opts.stallMs);
    const meter = new UsageMeter(cgroup, proc.pid ?? 0, () => (storage ? [storage.root] : insideStorage(proc.pid ?? 0)), () => egress.journal.counters());
    const sb = new Sandbox(id, "", {}, new Map(), limits, resources, proc, link, meter, { proxy: egress.proxy, journal: egress.journal, socketDir: egress.socketDir });
    // A sandbox may provoke these as often as it likes; the daemon's log takes a bounded share of each.
    const refusals = budgeted((m) => this.log.warn(`sandbox ${sb.id}: ${m}`), "refusals of requests carrying secrets (the egress log keeps them all)");
    const failures = budgeted((m) => this.log.error(`sandbox ${sb.id}: egress proxy: ${m}`), "failures");
    egress.proxy.onInternalError = failures;
    egress.proxy.onBound = budgeted((m) => this.log.warn(`sandbox ${sb.id}: egress: ${m}`), "connections turned away at a bound");
    egress.journal.onEvent = (event) => {
      // Names the secret and the host, never the value.
      if (event.secret) refusals(`egress refused a request carrying secret ${event.secret}: ${event.reason}`);
      for (const c of sb.networkWatchers) if (!c.closed) c.notify("sandbox.network", { id: sb.id, event });
    };
    link.onFatal = (reason) => this.destroy(sb, "error", reason);
    link.onExit = (pid, code, signal) => this.onProcessExit(sb, pid, code, signal);
    proc.once("exit", (code, signal) => this.onBwrapExit(sb, code, signal));
    proc.once("error", (err) => this.onBwrapExit(sb, null, null, err.message));
    this.sandboxes.set(id, sb);
    try {
      await link.ready(15_000);
      await this.records.write(id, proc.pid!);
    } catch (err) {
      this.destroy(sb, "error", (err as Error).message);
      throw new DaemonError("InternalError", `could not start the sandbox: ${(err as Error).message}`);
    }
    return sb;
  }

  connect(client: Client, id: string): Sandbox {
    const sb = this.get(client.owner, id);
    sb.attached.add(client);
    if (sb.graceTimer) {
      // A session sandbox whose creator left is adopted by the connection that picks it up.
      clearTimeout(sb.graceTimer);
      sb.graceTimer = null;
      sb.session = client;
    }
    return sb;
  }

  extendTimeout(client: Client, id: string, duration: string): Date {
    const sb = this.get(client.owner, id);
    const base = sb.expiresAt ? sb.expiresAt.getTime() : Date.now();
    const until = base + parseDuration(duration);
    if (until - Date.now() > MAX_TIMEOUT_MS) throw invalid("duration", "would put the expiry more than 168h from now");
    if (sb.graceTimer) clearTimeout(sb.graceTimer);
    sb.session = null;
    sb.graceTimer = null;
    this.setExpiry(sb, until);
    return sb.expiresAt!;
  }

  /** Usage of a running sandbox, or the final figures of one that ended recently. */
  usage(client: Client, id: string): Usage & { status: "running" | "stopped" } {
    const done = this.finished.get(id);
    if (done && done.owner === client.owner) return { ...done.usage, status: "stopped" };
    return { ...this.get(client.owner, id).meter.current(), status: "running" };
  }

  kill(client: Client, id: string): void {
    this.destroy(this.get(client.owner, id), "killed");
  }

  /** A connection closed: its session sandboxes die after the grace period unless reclaimed. */
  detach(client: Client): void {
    for (const sb of this.sandboxes.values()) {
      sb.attached.delete(client);
      sb.networkWatchers.delete(client);
      if (sb.session === client && !sb.stopped) {
        sb.graceTimer = setTimeout(() => this.destroy(sb, "session"), this.opts.sessionGraceMs);
      }
    }
  }

  async shutdown(): Promise<void> {
    clearInterval(this.sampler);
    this.disk?.stop();
    await this.pool.close();
    const all = [...this.sandboxes.values()];
    for (const sb of all) this.destroy(sb, "killed", "daemon shutting down");
    await Promise.all(all.map((sb) => (sb.proc.exitCode !== null || sb.proc.signalCode !== null ? null : new Promise((r) => sb.proc.once("exit", r)))));
    await Promise.all(this.cleanups);
    await this.opts.cgroups?.removeBase();
    // Every sandbox ended and wrote its final record: no running totals to recover.
    this.usageStore.writeRunning(new Map());
    this.files.close();
  }

  private limitsOf(p: ParamsOf<"sandbox.create">) {
    const memoryBytes = p.memory === undefined ? 1280 * MIB : parseBytes(p.memory);
    if (memoryBytes < 128 * MIB || memoryBytes > totalmem()) throw invalid("memory", `must be between 128MiB and this host's ${Math.floor(totalmem() / MIB)}MiB`);
    const diskBytes = p.disk === undefined ? 10 * 1024 * MIB : parseBytes(p.disk);
    if (diskBytes < MIB) throw invalid("disk", "must be at least 1MiB");
    const cpus = p.cpus ?? 1;
    // The kernel's smallest CFS quota is 1 ms per 100 ms period.
    if (cpus < 0.01) throw invalid("cpus", "must be at least 0.01");
    if (cpus > availableParallelism()) throw invalid("cpus", `must be at most this host's ${availableParallelism()} cores`);
    return { memoryBytes, diskBytes, cpus };
  }

  private setExpiry(sb: Sandbox, at: number): void {
    if (sb.expiryTimer) clearTimeout(sb.expiryTimer);
    sb.expiresAt = new Date(at);
    sb.expiryTimer = setTimeout(() => this.destroy(sb, "timeout"), Math.max(0, at - Date.now()));
  }

  /** Routes a process's exit to the client that spawned it, even if the exit won the race. */
  trackProcess(sb: Sandbox, pid: number, client: Client): void {
    const early = sb.earlyExits.get(pid);
    if (early) {
      sb.earlyExits.delete(pid);
      client.notify("process.exit", { sandbox: sb.id, pid, status: early });
    } else sb.processes.set(pid, client);
  }

  private onProcessExit(sb: Sandbox, pid: number, code: number | null, signal: string | null): void {
    const signum = signal ? (osConstants.signals as Record<string, number>)[signal] ?? 0 : 0;
    // The kernel's OOM killer sends SIGKILL and counts it in the cgroup: that is how we know.
    // Read the counter on every exit, so an OOM kill of a grandchild is used up where it happened
    // and never blamed on a later SIGKILL the API sent.
    const kills = sb.meter.oomKills();
    const fresh = kills > sb.oomKillsSeen;
    sb.oomKillsSeen = kills;
    const sentByUs = sb.sigkilled.delete(pid);
    const oom = signal === "SIGKILL" && fresh && !sentByUs;
    const status = { success: code === 0, code: code ?? 128 + signum, signal, oom };
    const client = sb.processes.get(pid);
    if (!client) {
      // The exit arrived before the spawn call finished; keep a bounded few until it does.
      if (sb.earlyExits.size >= 1024) sb.earlyExits.delete(sb.earlyExits.keys().next().value!);
      sb.earlyExits.set(pid, status);
      return;
    }
    sb.processes.delete(pid);
    if (!client.closed) client.notify("process.exit", { sandbox: sb.id, pid, status });
  }

  private keepFinal(id: string, record: UsageRecord): void {
    this.finished.set(id, record);
    this.usageStore.writeFinal(id, record);
  }

  /** Every owned running sandbox's totals so far, on disk: what a restarted daemon reports if this one is killed. */
  private saveRunningUsage(): void {
    const running = new Map<string, { owner: string; usage: Usage }>();
    for (const sb of this.sandboxes.values()) if (sb.owner && !sb.stopped) running.set(sb.id, { owner: sb.owner, usage: sb.meter.current() });
    this.usageStore.writeRunning(running);
  }

  /** Kills the sandbox; the rest of the teardown runs when bwrap has exited. */
  private destroy(sb: Sandbox, reason: "killed" | "timeout" | "session" | "error", message?: string): void {
    if (sb.stopped) return;
    sb.stopped = true;
    // Freeze the figures now, so the final usage is readable the moment kill returns.
    if (sb.owner) this.keepFinal(sb.id, { owner: sb.owner, usage: sb.meter.finish(), at: Date.now() });
    sb.clearTimers();
    sb.link.stop(message ?? reason);
    sb.proc.kill("SIGKILL");
    this.log.info(`sandbox ${sb.id} stopping (${reason}${message ? `: ${message}` : ""})`);
    for (const client of sb.attached) client.notify("sandbox.exit", { id: sb.id, reason, ...(message ? { message: message.slice(0, 4000) } : {}) });
    sb.attached.clear();
  }

  private onBwrapExit(sb: Sandbox, code: number | null, signal: string | null, error?: string): void {
    if (!sb.stopped) {
      const oom = sb.meter.oomKills() > sb.oomKillsSeen;
      this.destroy(sb, "error", error ?? deathReason({ code, signal, oom, memoryBytes: sb.limits.memoryBytes, stderr: sb.link.stderr() }));
    }
    this.sandboxes.delete(sb.id);
    this.pool.forget(sb);
    const usage = sb.meter.finish();
    const now = Date.now();
    const expired = [...this.finished].filter(([, f]) => now - f.at > FINISHED_TTL_MS).map(([id]) => id);
    for (const id of expired) this.finished.delete(id);
    if (expired.length) void this.usageStore.prune(expired);
    if (sb.owner) this.keepFinal(sb.id, { owner: sb.owner, usage, at: now });
    this.log.info(
      `sandbox ${sb.id} ended: cpu ${usage.cpuSeconds}s, memory peak ${usage.memoryPeakBytes} B, ${usage.memoryGbSeconds} GB-s, disk ${usage.diskBytes} B, wall ${usage.wallSeconds}s${usage.approximate ? " (approximate)" : ""}`,
    );
    const cleanup = async () => {
      await stopSandboxEgress(sb.egress);
      await sb.resources.release();
      await this.records.remove(sb.id);
    };
    const done: Promise<void> = cleanup()
      .catch((err) => this.log.warn(`could not clean up after ${sb.id}: ${err.message}`))
      .finally(() => this.cleanups.delete(done));
    this.cleanups.add(done);
  }
}

/**
 * Why a sandbox ended without being asked to, in words its owner can act on: bwrap exits with
 * its first process's status, 128 + N when a signal killed it, and the cgroup counts OOM kills.
 *
 * @example deathReason({ code: 137, signal: null, oom: true, memoryBytes: 256 << 20, stderr: "" })
 * // "the kernel's OOM killer ended the sandbox's supervisor: the sandbox used all of its 256 MiB of memory; create it with more"
 */
export function deathReason(d: { code: number | null; signal: string | null; oom: boolean; memoryBytes: number; stderr: string }): string {
  const bySignal = d.signal ?? (d.code !== null && d.code > 128 ? signalName(d.code - 128) : null);
  if (d.oom) return `the kernel's OOM killer ended the sandbox's supervisor: the sandbox used all of its ${Math.round(d.memoryBytes / MIB)} MiB of memory; create it with more`;
  if (bySignal) return `the sandbox's supervisor was killed by ${bySignal} (not by sbx); bwrap: ${d.stderr}`;
  return `the sandbox's supervisor exited with code ${d.code}; bwrap: ${d.stderr}`;
}

function signalName(n: number): string {
  return Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;
}

/** Rootless: the sandbox's home and /tmp, seen through its init process's root. */
function insideStorage(bwrapPid: number): string[] {
  try {
    const init = readFileSync(`/proc/${bwrapPid}/task/${bwrapPid}/children`, "utf8").trim().split(" ")[0];
    return init ? [`/proc/${init}/root/home/user`, `/proc/${init}/root/tmp`] : [];
  } catch {
    return [];
  }
}

/** allowNet as the proxy's allow-list; a bad entry is an invalid option naming it. */
function parseAllowNet(entries: string[]): AllowList {
  try {
    return AllowList.parse(entries);
  } catch (err) {
    if (err instanceof AllowNetError) throw invalid(`allowNet[${err.index ?? 0}]`, err.message);
    throw err;
  }
}

/** The sandbox's secrets, checked; a bad one is InvalidParams naming the secret (never its value). */
function secretsOf(p: ParamsOf<"sandbox.create">): SecretSet {
  if (!p.secrets || Object.keys(p.secrets).length === 0) return SecretSet.none;
  let secrets: SecretSet;
  try {
    secrets = SecretSet.create(p.secrets);
  } catch (err) {
    if (err instanceof SecretSpecError) throw invalid(`secrets.${err.secret}`, err.message.slice(`secrets.${err.secret}.`.length));
    throw err;
  }
  for (const name of Object.keys(secrets.env)) {
    if (p.env && Object.hasOwn(p.env, name)) throw invalid(`env.${name}`, `is also the name of a secret; the sandbox's ${name} holds the secret's placeholder`);
  }
  return secrets;
}
