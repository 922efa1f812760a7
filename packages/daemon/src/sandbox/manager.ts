import { closeSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { customAlphabet } from "nanoid";
import { SANDBOX_HOME, type ParamsOf } from "@sbx/protocol";
import { AllowList } from "../egress/policy/allowlist.js";
import { AllowNetError } from "../egress/policy/errors.js";
import type { DecideOptions } from "../egress/policy/policy.js";
import { releaseFd, startSandboxEgress, stopSandboxEgress, type SandboxEgress } from "../egress/proxy/endpoint.js";
import type { InterceptTls } from "../egress/proxy/proxy.js";
import type { EgressShared } from "../egress/proxy/limits.js";
import { SecretSet, SecretSpecError } from "../egress/secrets/secrets.js";
import { SECRETS_TRUST_ENV } from "../egress/tls/trust.js";
import type { CgroupDriver } from "../cgroups/cgroups.js";
import { DaemonError, invalid } from "../util/errors.js";
import { callContext } from "../util/context.js";
import type { Logger } from "../util/log.js";
import type { DaemonMetrics } from "../metrics/metrics.js";
import { Accounting, type TenantDirectory } from "./accounting.js";
import { deathReason } from "./death.js";
import { CpuPlacer } from "./cpus.js";
import { DiskBudget, type DiskPolicy } from "./disk-budget.js";
import { wireEgress } from "./egress-logs.js";
import { execSizeProblem } from "./exec-size.js";
import type { EtcLease, EtcView } from "./etc-view.js";
import { launch, openSandboxFiles } from "./launcher.js";
import { timeoutOf } from "./lifetime.js";
import { limitsOf, rootlessWarnings, sameLimits } from "./limits.js";
import { WarmPool } from "./pool.js";
import { ImagePool } from "./image-pool.js";
import { startReaper } from "./reaper.js";
import { SandboxRecords } from "./records.js";
import { acquireResources, setSize, type SandboxResources } from "./resources.js";
import { Sandbox, type Client, type EndReason, type SandboxLimits } from "./sandbox.js";
import { reclaimStorage } from "./storage.js";
import { StorageStock } from "./storage-stock.js";
import { SupervisorLink } from "./supervisor-link.js";
import { UidPool } from "./uids.js";
import { UID_BLOCK } from "./uid-range.js";
import { SANDBOX_UID } from "./launcher.js";
import { UsageMeter, type Usage } from "./usage.js";
import { VolumeStore, type RootBind, type VolumeBind, type VolumeClaim } from "../volumes/store.js";
import { ROOTLESS_VOLUMES } from "../volumes/handlers.js";

const newId = customAlphabet("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 24);

export interface ManagerOptions {
  stateDir: string;
  bwrapPath: string;
  /** sbx-launch, which starts each sandbox's bwrap (native/launch.c). */
  launcherPath: string;
  nodePath: string;
  supervisorPath: string;
  preloadPath: string;
  preloadImplPath: string;
  denoPath: string | null;
  /** Where exposeHttp listens (the API's listen host) and the host its URLs name. */
  expose: { bind: string; host: string };
  denoReplPath: string;
  pythonReplPath: string;
  /** Host uids this daemon claimed for its sandboxes (root mode); null in rootless mode. */
  uids: { base: number; count: number } | null;
  /** Blocks of UID_BLOCK host uids for sandboxes booted from an image (root mode); null: none may be. */
  uidBlocks: { base: number; count: number } | null;
  sessionGraceMs: number;
  maxSandboxesPerOwner: number;
  /** cgroup driver in root mode; null where cgroups are not used (rootless). */
  cgroups: CgroupDriver | null;
  /** Name pins and the daemon's API address, shared by every sandbox's egress proxy. */
  egress: DecideOptions;
  /** The daemon-wide side of every proxy's bounds (connections, held bytes, decoding) and the host's addresses. */
  egressShared: EgressShared;
  /** The daemon's CA and upstream trust for intercepting secret hosts, and the trust files every sandbox binds. */
  tls: InterceptTls & { bundleFd: number; systemBundleFd: number; caFd: number; javaStoreFd: number };
  /** The compiled seccomp program for every sandbox. */
  seccomp: Buffer;
  /** The /etc every sandbox on the host's /usr binds (the daemon's copy; closed by shutdown). */
  etcView: EtcView;
  pidsPerSandbox: number;
  ptysPerSandbox: number;
  openFilesPerProcess: number;
  /** Default-limit sandboxes kept started ahead of demand; 0 turns the pool off. */
  warmPool: number;
  /** The most the pool grows to when creates outrun it. */
  warmPoolMax: number;
  /** Sandboxes kept booted per image (snapshot root) after a create from it, for the 4 images booted last; 0: none. */
  imageWarmPool?: number;
  /** Default-size sandbox file systems kept formatted and mounted ahead of demand (root mode). */
  storageStock: number;
  storageStockMax: number;
  /** How long a call to a sandbox may wait before its supervisor must prove it still answers. */
  stallMs: number;
  /** What one sandbox's unread output may hold in the daemon, all its streams together (config streamBytesPerSandbox). */
  streamBytesPerSandbox?: number;
  /** What the daemon promises about sandboxes' disks (root mode). */
  disk: DiskPolicy;
  /** Put in every sandbox id after "sbx_" (config idPrefix), so a fleet gateway routes by id. */
  idPrefix?: string | null;
  /** Tenants' names and quotas by owner key. */
  tenants: TenantDirectory;
  /** Counters and histograms the daemon's /metrics serves. */
  metrics: DaemonMetrics;
  log: Logger;
}

/**
 * Owns every sandbox of one daemon: creation (from the warm pool or launched), lookup by owner,
 * and teardown. What a sandbox is lives in `Sandbox`; its limits in `limits.ts`; when it ends on
 * its own in `Lifetime`; its processes' exits in `ProcessTable`; what it used in `Accounting`.
 */
export class SandboxManager {
  private readonly sandboxes = new Map<string, Sandbox>();
  private readonly uids: UidPool | null;
  /** Indexes of the free blocks of opts.uidBlocks. */
  private readonly blocks: UidPool | null;
  private readonly records: SandboxRecords;
  private readonly log: Logger;
  private readonly files: ReturnType<typeof openSandboxFiles>;
  /** Teardowns still running (unmounting storage, removing records). */
  private readonly cleanups = new Set<Promise<void>>();
  private readonly accounting: Accounting;
  /** Started sandboxes nobody owns yet, handed out by create(). */
  private readonly pool: WarmPool;
  /** Sandboxes booted ahead from the snapshots creates booted from lately (imageWarmPool). */
  private readonly images: ImagePool;
  /** Root mode: the promises sandboxes' disk caps make against the state dir's free space. */
  private readonly disk: DiskBudget | null;
  /** Which CPUs each sandbox sees and runs on. */
  private readonly cpus = new CpuPlacer();
  /** Volume claims handed to a launched bwrap: its teardown releases them. */
  private readonly volumeClaims = new Map<VolumeClaim, string>();
  /** Root mode: volumes and snapshots, and which sandbox has which mounted. */
  readonly volumes: VolumeStore | null;
  /** Root mode: file systems made ahead of demand. */
  private readonly storage: StorageStock;
  /** The /etc view generation each launched sandbox holds until its bwrap has exited. */
  private readonly etcLeases = new Map<Sandbox, EtcLease>();

  constructor(private readonly opts: ManagerOptions) {
    this.log = opts.log;
    this.files = openSandboxFiles(opts);
    this.pool = new WarmPool({
      base: opts.warmPool,
      max: Math.max(opts.warmPool, opts.warmPoolMax),
      // Refills never take more than half the host's CPUs from the sandboxes already running.
      parallel: Math.max(1, Math.floor(availableParallelism() / 2)),
      defaults: limitsOf({}),
      kindOf: (limits) => `${limits.diskBytes}/${setSize(this.cpus, limits.cpus)}`,
      launch: (limits) => this.launchSandbox(limits),
      discard: (sb) => this.destroy(sb, "killed", "the warm pool shrank"),
      fresh: (sb) => this.etcLeases.get(sb)?.current ?? true,
      log: opts.log,
    });
    const kindOf = (limits: SandboxLimits) => `${limits.diskBytes}/${setSize(this.cpus, limits.cpus)}`;
    this.images = new ImagePool({
      size: opts.uids === null ? 0 : (opts.imageWarmPool ?? 0),
      images: 4,
      fits: (pooled, wanted) => kindOf(pooled) === kindOf(wanted),
      launch: (owner, snapshotId, limits) => this.launchSandbox(limits, this.volumes!.claim(owner, {}, snapshotId)),
      discard: (sb, why) => this.end(sb, why),
      log: opts.log,
    });
    this.accounting = new Accounting(opts.stateDir, opts.tenants, () => this.sandboxes.values(), opts.log);
    this.uids = opts.uids === null ? null : new UidPool(opts.uids.base, opts.uids.count);
    this.blocks = opts.uidBlocks === null ? null : new UidPool(0, Math.floor(opts.uidBlocks.count / UID_BLOCK));
    this.disk = opts.uids === null ? null : new DiskBudget(this.mountDir, opts.disk, opts.log);
    this.records = new SandboxRecords(join(opts.stateDir, "sandboxes"), opts.log);
    const defaultDisk = limitsOf({}).diskBytes;
    this.storage = new StorageStock({
      dir: this.mountDir,
      size: opts.uids === null ? 0 : opts.storageStock,
      max: Math.max(opts.storageStock, opts.storageStockMax),
      bytes: defaultDisk,
      reserve: opts.disk.reserve,
      mayPrepare: () => this.disk?.allows(defaultDisk, [...this.diskClaims(), ...this.storage.claims()]) ?? false,
      newId: () => `sbx_${opts.idPrefix ? `${opts.idPrefix}_` : ""}${newId()}`,
      log: opts.log,
    });
    this.volumes = opts.uids === null ? null : new VolumeStore(join(opts.stateDir, "volumes"), opts.log, { evict: (id) => this.images.evict(id), hidden: (id) => this.images.holds(id) }, opts.idPrefix ?? null);
    // A pooled sandbox started with an /etc the host has since changed is no new sandbox's.
    opts.etcView.onChange(() => this.pool.dropStale());
  }

  async init(): Promise<void> {
    // Kill leftovers first, then detach their storage.
    await this.records.init();
    await this.accounting.init();
    if (this.uids) {
      await fsp.mkdir(this.mountDir, { recursive: true, mode: 0o711 });
      await fsp.chmod(this.mountDir, 0o711);
      const detached = await reclaimStorage(this.mountDir);
      if (detached > 0) this.log.info(`detached ${detached} storage mounts left by a previous daemon`);
      const cgroups = (await this.opts.cgroups?.reclaim()) ?? 0;
      if (cgroups > 0) this.log.info(`removed ${cgroups} cgroups left by a previous daemon`);
      startReaper(this.mountDir, this.opts.cgroups?.baseDirs ?? []);
      await this.volumes!.init();
      this.disk!.describe();
      this.disk!.watch();
      await this.storage.fill();
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
    return rootlessWarnings(p);
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
    this.get(client.owner, id).watchNetwork(client, enabled);
  }

  /** Where root mode mounts each sandbox's storage; traversable (not listable) by sandbox uids. */
  private get mountDir(): string {
    return join(this.opts.stateDir, "mnt");
  }

  /** Closes the trust files every sandbox binds (after shutdown). */
  closeFiles(): void {
    for (const fd of [this.opts.tls.bundleFd, this.opts.tls.systemBundleFd, this.opts.tls.caFd, this.opts.tls.javaStoreFd]) {
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

  /** The daemon's counters, for the server's connections and handlers to bump. */
  get metrics(): DaemonMetrics {
    return this.opts.metrics;
  }

  /** Live sandboxes, owned and pooled, and each tenant's usage so far: what /metrics reads when scraped. */
  get metricsSource() {
    return {
      sandboxes: () => {
        let owned = 0;
        let pooled = 0;
        for (const sb of this.sandboxes.values()) if (!sb.stopped) sb.owner ? owned++ : pooled++;
        return { owned, pooled };
      },
      tenantUsage: () => this.accounting.tenantUsage(),
    };
  }

  /** The sandbox `id` if `owner` may use it; otherwise SandboxNotFound (never revealing it exists). */
  /** Where exposeHttp listens and the host its URLs name. */
  get expose(): { bind: string; host: string } {
    return this.opts.expose;
  }

  /** Whether its sandboxes have Deno (bound at runtimes/files.ts's DENO_PATH). */
  get hasDeno(): boolean {
    return this.files.runtimes.denoFd !== null;
  }

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
    const started = performance.now();
    try {
      return await this.createSandbox(client, p, started);
    } catch (err) {
      // json-rpc-2.0 resets its exceptions' prototype, so the code name is read off the object.
      this.opts.metrics.createErrors.inc({ code: (err as { codeName?: string }).codeName ?? "InternalError" });
      throw err;
    }
  }

  private async createSandbox(client: Client, p: ParamsOf<"sandbox.create">, started: number): Promise<{ sandbox: Sandbox; warnings: string[] }> {
    const limits = limitsOf(p);
    const tooBig = execSizeProblem([], p.env ?? {});
    if (tooBig) throw invalid(tooBig.field, tooBig.message);
    const secrets = secretsOf(p);
    // A secret's hosts are always reachable: its placeholder would be useless otherwise.
    const allowList = parseAllowNet([...(p.allowNet ?? []), ...secrets.hostEntries]);
    const timeoutMs = timeoutOf(p.timeout);
    const owned = [...this.sandboxes.values()].filter((sb) => sb.owner === client.owner).length;
    if (owned >= this.opts.maxSandboxesPerOwner) {
      throw new DaemonError("ResourceLimit", `this token already has ${owned} sandboxes, the most the daemon allows (maxSandboxesPerToken)`);
    }
    this.accounting.checkQuotas(client.owner, limits);
    // A snapshot root (and nothing else mounted) may have sandboxes booted ahead in its image's pool.
    const image = p.root !== undefined && !Object.keys(p.volumes ?? {}).length ? (this.volumes?.snapshotIdOf(client.owner, p.root) ?? null) : null;
    const fromImage = image ? await this.claimPooled(this.images.take(client.owner, image, limits), limits) : null;
    const claim = fromImage ? null : this.claimVolumes(client.owner, p.volumes, p.root);

    // The warm pool's sandboxes have no volumes bound and boot from the host's /usr: one that asks for volumes or a root is launched.
    const warm = fromImage ?? (claim ? null : await this.fromPool(limits));
    const sb = warm ?? (await this.launchSandbox(limits, claim));
    if (image) this.images.refill(client.owner, image, limits);
    sb.egress.proxy.setAllowList(allowList);
    sb.egress.proxy.setSecrets(secrets);
    sb.handOut({
      owner: client.owner,
      labels: p.labels ?? {},
      baseEnv: secrets.empty ? {} : SECRETS_TRUST_ENV,
      secretHosts: secrets.hostEntries,
      env: { ...secrets.env, ...(p.env ?? {}) },
    });
    if (timeoutMs === null) sb.lifetime.bindTo(client);
    else sb.lifetime.endAt(Date.now() + timeoutMs);
    sb.attach(client);
    const source = warm ? "pool" : "launch";
    this.opts.metrics.creates.inc({ tenant: this.opts.tenants.nameOf(client.owner), source });
    this.opts.metrics.createSeconds.observe({ source }, (performance.now() - started) / 1000);
    const { hostUid, cgroup } = sb.resources;
    this.log.info(
      `sandbox ${sb.id} started${warm ? " from the warm pool" : ""} (host uid ${hostUid ?? process.getuid?.()}, bwrap pid ${sb.proc.pid}${cgroup ? `, cgroup v${this.opts.cgroups!.version}` : ""})`,
    );
    return { sandbox: sb, warnings: this.warningsFor(sb, p) };
  }

  /** A pooled sandbox held to `limits`, or null when the pool has none of that kind (or it died being claimed). */
  private fromPool(limits: SandboxLimits): Promise<Sandbox | null> {
    return this.claimPooled(this.pool.take(limits), limits);
  }

  /** `sb` (taken from a pool, or null) held to `limits`, or null if it died being claimed. */
  private async claimPooled(sb: Sandbox | null, limits: SandboxLimits): Promise<Sandbox | null> {
    if (!sb) return null;
    if (!sameLimits(sb.limits, limits)) {
      try {
        await sb.retune(limits);
      } catch (err) {
        this.destroy(sb, "error", `could not set its limits: ${(err as Error).message}`);
        return null;
      }
    }
    return sb.stopped ? null : sb;
  }

  /**
   * Starts a sandbox that belongs to nobody yet (owner ""): no token can see it until it is
   * handed out. Outside any call's context: what the sandbox does later (exits, egress) is not
   * the doing of the call that happened to start it.
   */
  private launchSandbox(limits: SandboxLimits, claim: VolumeClaim | null = null): Promise<Sandbox> {
    return callContext.exit(async () => {
      try {
        return await this.startSandbox(limits, claim);
      } catch (err) {
        // Once bwrap ran, its teardown releases the volumes (after it exited); this covers the rest.
        if (claim && !this.volumeClaims.has(claim)) await claim.release();
        throw err;
      }
    });
  }

  /** Reserves the volumes and root a create names (checking paths, owner and use), or null if it names none. */
  private claimVolumes(owner: string, volumes: Record<string, string> | undefined, root: string | undefined): VolumeClaim | null {
    if ((!volumes || Object.keys(volumes).length === 0) && root === undefined) return null;
    if (!this.volumes) throw new DaemonError("Unsupported", ROOTLESS_VOLUMES);
    return this.volumes.claim(owner, volumes ?? {}, root);
  }

  /**
   * A sandbox booted from an image takes a block of host uids: its uid 0 is the block's first,
   * its user (uid 1000 inside) the block's 1000th, which is the host uid it runs as.
   */
  private takeBlock(): { base: number; uids: Pick<UidPool, "take" | "release"> } {
    if (!this.blocks || !this.opts.uidBlocks) throw new DaemonError("Unsupported", "this daemon boots no sandbox from an image (config rootSandboxes is 0)");
    let block: number;
    try {
      block = this.blocks.take();
    } catch {
      throw new DaemonError("ResourceLimit", `all ${Math.floor(this.opts.uidBlocks.count / UID_BLOCK)} sandboxes booted from an image that this daemon allows at once are running (config rootSandboxes)`);
    }
    const base = this.opts.uidBlocks.base + block * UID_BLOCK;
    return { base, uids: { take: () => base + SANDBOX_UID, release: () => this.blocks!.release(block) } };
  }

  private async startSandbox(limits: SandboxLimits, claim: VolumeClaim | null = null): Promise<Sandbox> {
    this.disk?.admit(limits.diskBytes, this.diskClaims());
    const block = claim?.boots ? this.takeBlock() : null;
    // Root mode: the sandbox takes the id of the file system it gets (prepared ones were named ahead).
    let fs: ReturnType<StorageStock["take"]>;
    try {
      fs = this.storage.take(limits.diskBytes);
    } catch (err) {
      block?.uids.release(0);
      throw err;
    }
    const { id } = fs;
    let resources: SandboxResources;
    try {
      resources = await acquireResources({ uids: block?.uids ?? this.uids, cgroups: this.opts.cgroups, pidsPerSandbox: this.opts.pidsPerSandbox, cpus: this.cpus }, fs, limits);
    } catch (err) {
      throw new DaemonError("InternalError", `could not set up the sandbox's host resources: ${(err as Error).message}`);
    }
    const { hostUid, storage, cgroup } = resources;
    let volumes: VolumeBind[] = [];
    let root: RootBind | null = null;
    let etc: EtcLease | null = null;
    try {
      if (claim) ({ binds: volumes, root } = await claim.mount(id, hostUid!, storage!.root, block?.base ?? null));
      if (!root) {
        etc = await this.opts.etcView.acquire().catch((err: Error) => {
          throw new DaemonError("InternalError", err.message);
        });
      }
    } catch (err) {
      await claim?.release();
      await resources.release();
      throw err;
    }
    let egress: SandboxEgress;
    try {
      // Root mode keeps the socket on the sandbox's own storage file system.
      egress = await startSandboxEgress(storage ? join(storage.root, "run") : join(this.runDir, id), hostUid, this.opts.egress, this.opts.egressShared, this.opts.tls);
    } catch (err) {
      etc?.release();
      await claim?.release();
      await resources.release();
      throw new DaemonError("InternalError", `could not start the sandbox's egress proxy: ${(err as Error).message}`);
    }
    const proc = launch({
      egressDirFd: egress.socketDirFd,
      launcherPath: this.opts.launcherPath,
      bwrapPath: this.opts.bwrapPath,
      etc: etc && { fd: etc.fd, systemBundle: etc.systemBundle },
      hostUid,
      tmpfsBytes: limits.diskBytes,
      storage,
      volumes,
      root,
      userns: block ? { base: block.base, count: UID_BLOCK } : null,
      cpuSet: resources.cpuSet,
      cpusOnline: this.cpus.cpus,
      nodeFd: this.files.nodeFd,
      supervisorFd: this.files.supervisorFd,
      preloadFd: this.files.preloadFd,
      preloadImplFd: this.files.preloadImplFd,
      runtimes: this.files.runtimes,
      trustBundleFd: this.opts.tls.bundleFd,
      trustSystemBundleFd: this.opts.tls.systemBundleFd,
      trustCaFd: this.opts.tls.caFd,
      javaStoreFd: this.opts.tls.javaStoreFd,
      seccomp: this.opts.seccomp,
      ptysPerSandbox: this.opts.ptysPerSandbox,
      cgroupProcs: cgroup?.procsFiles ?? [],
      cgroupDir: cgroup?.bornIn ?? null,
      // RLIMIT_NPROC counts per real uid: a per-sandbox bound only where each sandbox has its own uid.
      rlimits: { nofile: this.opts.openFilesPerProcess, nproc: hostUid !== null ? this.opts.pidsPerSandbox : null },
      hostname: "sbx",
    });
    releaseFd(egress);
    const link = new SupervisorLink(proc, this.log, id, this.opts.stallMs, this.opts.streamBytesPerSandbox);
    const meter = new UsageMeter(cgroup, proc.pid ?? 0, () => (storage ? [storage.root] : insideStorage(proc.pid ?? 0)), () => egress.journal.counters());
    const parts = { limits, resources, proc, link, meter, egress: { proxy: egress.proxy, journal: egress.journal, socketDir: egress.socketDir }, sudo: block !== null };
    const sb = new Sandbox(id, parts, this.opts.sessionGraceMs, (reason) => this.destroy(sb, reason));
    if (etc) this.etcLeases.set(sb, etc);
    wireEgress(sb, egress, this.log, this.opts.metrics);
    link.onFatal = (reason) => this.destroy(sb, "error", reason);
    link.onExit = (pid, code, signal) => {
      if (sb.processes.exited(pid, code, signal).oom) this.opts.metrics.oomKills.inc();
    };
    if (claim) this.volumeClaims.set(claim, id);
    proc.once("exit", (code, signal) => this.onBwrapExit(sb, code, signal, undefined, claim));
    proc.once("error", (err) => this.onBwrapExit(sb, null, null, err.message, claim));
    this.sandboxes.set(id, sb);
    // The record (what a restarted daemon kills if this one dies) is written while bwrap starts: both are done before the sandbox is handed out.
    const recorded = this.records.write(id, proc.pid!);
    try {
      await Promise.all([link.ready(15_000), recorded]);
    } catch (err) {
      await recorded.catch(() => {}); // written before the teardown removes it
      this.destroy(sb, "error", (err as Error).message);
      throw new DaemonError("InternalError", `could not start the sandbox: ${(err as Error).message}`);
    }
    return sb;
  }

  connect(client: Client, id: string): Sandbox {
    const sb = this.get(client.owner, id);
    sb.attach(client);
    return sb;
  }

  extendTimeout(client: Client, id: string, duration: string): Date {
    return this.get(client.owner, id).lifetime.extend(duration);
  }

  /** Usage of a running sandbox, or the final figures of one that ended recently. */
  usage(client: Client, id: string): Usage & { status: "running" | "stopped" } {
    const done = this.accounting.finalUsage(client.owner, id);
    if (done) return { ...done, status: "stopped" };
    return { ...this.get(client.owner, id).meter.current(), status: "running" };
  }

  /** A read-only snapshot of the sandbox's writable storage (root mode). */
  async snapshot(client: Client, id: string, slug: string) {
    const sb = this.get(client.owner, id);
    const storage = sb.resources.storage;
    if (!this.volumes || !storage) throw new DaemonError("Unsupported", ROOTLESS_VOLUMES);
    const hostUid = sb.resources.hostUid!;
    return this.volumes.snapshotStorage(client.owner, sb.id, { root: storage.root, image: storage.image, hostUid, rootUid: sb.sudo ? hostUid - SANDBOX_UID : null }, slug);
  }

  /** Kills the sandbox; resolves at once, or once its volumes are unmounted if it has any (so they can be used again). */
  async kill(client: Client, id: string): Promise<void> {
    const sb = this.get(client.owner, id);
    const claim = [...this.volumeClaims].find(([, owner]) => owner === sb.id)?.[0];
    this.destroy(sb, "killed");
    await claim?.released;
  }

  /** A connection closed: its session sandboxes die after the grace period unless reclaimed. */
  detach(client: Client): void {
    for (const sb of this.sandboxes.values()) sb.detach(client);
  }

  async shutdown(): Promise<void> {
    this.disk?.stop();
    await this.pool.close();
    await this.images.close();
    const all = [...this.sandboxes.values()];
    for (const sb of all) this.destroy(sb, "killed", "daemon shutting down");
    await Promise.all(all.map((sb) => (sb.proc.exitCode !== null || sb.proc.signalCode !== null ? null : new Promise((r) => sb.proc.once("exit", r)))));
    await Promise.all(this.cleanups);
    await this.volumes?.close();
    await this.storage.close();
    await this.opts.cgroups?.removeBase();
    await this.opts.etcView.close();
    this.accounting.close();
    this.files.close();
  }

  /** Kills a sandbox nobody owns (a pooled one) and settles once its teardown gave back what it held. */
  private async end(sb: Sandbox, why: string): Promise<void> {
    const claim = [...this.volumeClaims].find(([, id]) => id === sb.id)?.[0];
    this.destroy(sb, "killed", why);
    await claim?.released;
  }

  /** Kills the sandbox; the rest of the teardown runs when bwrap has exited. */
  private destroy(sb: Sandbox, reason: EndReason, message?: string): void {
    if (!sb.stop(reason, message)) return;
    if (sb.owner) this.opts.metrics.ends.inc({ reason });
    this.accounting.stopping(sb);
    sb.link.stop(message ?? reason);
    sb.proc.kill("SIGKILL");
    this.log.info(`sandbox ${sb.id} stopping (${reason}${message ? `: ${message}` : ""})`);
  }

  private onBwrapExit(sb: Sandbox, code: number | null, signal: string | null, error?: string, claim: VolumeClaim | null = null): void {
    if (!sb.stopped) {
      const oom = sb.processes.unattributedOom();
      this.destroy(sb, "error", error ?? deathReason({ code, signal, oom, memoryBytes: sb.limits.memoryBytes, stderr: sb.link.stderr() }));
    }
    this.sandboxes.delete(sb.id);
    // Its mount namespace is gone with it: the /etc generation it held may be removed.
    this.etcLeases.get(sb)?.release();
    this.etcLeases.delete(sb);
    this.pool.forget(sb);
    this.images.forget(sb);
    const usage = this.accounting.ended(sb);
    this.log.info(
      `sandbox ${sb.id} ended: cpu ${usage.cpuSeconds}s, memory peak ${usage.memoryPeakBytes} B, ${usage.memoryGbSeconds} GB-s, disk ${usage.diskBytes} B, wall ${usage.wallSeconds}s${usage.approximate ? " (approximate)" : ""}`,
    );
    const cleanup = async () => {
      await this.volumes?.thawed(sb.id);
      await stopSandboxEgress(sb.egress);
      await sb.resources.release();
      if (claim) await claim.release().finally(() => this.volumeClaims.delete(claim));
      await this.records.remove(sb.id);
    };
    const done: Promise<void> = cleanup()
      .catch((err) => this.log.warn(`could not clean up after ${sb.id}: ${err.message}`))
      .finally(() => this.cleanups.delete(done));
    this.cleanups.add(done);
  }
}

/** Rootless: the sandbox's home and /tmp, seen through its init process's root. */
function insideStorage(bwrapPid: number): string[] {
  try {
    const init = readFileSync(`/proc/${bwrapPid}/task/${bwrapPid}/children`, "utf8").trim().split(" ")[0];
    return init ? [`/proc/${init}/root${SANDBOX_HOME}`, `/proc/${init}/root/tmp`] : [];
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
