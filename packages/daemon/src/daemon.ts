import { hostname } from "node:os";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import * as fsp from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type DaemonConfig, parseListen } from "./config.js";
import { checkHost, findBwrap, formatChecks } from "./doctor.js";
import { detectCgroups, type CgroupDriver } from "./cgroups/cgroups.js";
import { dynmodsState, enableFavorDynmods } from "./cgroups/dynmods.js";
import { CertificateAuthority } from "./egress/tls/ca.js";
import type { DecideOptions } from "./egress/policy/policy.js";
import { upstreamTrust, writeSandboxTrust } from "./egress/tls/trust.js";
import { EgressShared } from "./egress/proxy/limits.js";
import { Dialer, upstreamFromEnvironment } from "./egress/proxy/dial.js";
import { hostPort } from "./egress/policy/host.js";
import { localAddresses } from "./egress/policy/addresses.js";
import { FD_RESERVE, raiseOpenFileLimit } from "./util/fd-limit.js";
import { prepareSandboxFiles } from "./sandbox/files.js";
import { buildPolicy, hostArch } from "./seccomp/policy.js";
import { SandboxManager } from "./sandbox/manager.js";
import { DaemonMetrics, startMetricsServer } from "./metrics/metrics.js";
import { ETC_SHARED, cachedLinkedEtcPaths } from "./sandbox/etc.js";
import { EtcView } from "./sandbox/etc-view.js";
import { claimUidRange, UID_BLOCK, type UidRange } from "./sandbox/uid-range.js";
import { Tokens, loadPrimaryToken } from "./server/auth.js";
import { createApiServer } from "./server/server.js";
import { ImageBuilder } from "./volumes/build.js";
import { createLogger, type Logger } from "./util/log.js";
import { daemonPid, pidFile, removeDaemonFiles, writeDaemonInfo } from "./lifecycle.js";
import { SBX_VERSION } from "./version.js";
import { findDeno, replDrivers } from "./runtimes/files.js";
import { HostState } from "./fleet/host-state.js";
import { useToolRunner } from "./util/host-tools.js";

/** The native supervisor that runs as pid 1 of every sandbox (built from native/ by `pnpm build`). */
const SUPERVISOR = fileURLToPath(new URL("./sbx-supervisor", import.meta.url));
/** What the daemon runs to start each sandbox's bwrap: cgroups, rlimits, affinity and uid in one exec (native/launch.c). */
const LAUNCHER = fileURLToPath(new URL("./sbx-launch", import.meta.url));
/** Runs the daemon's host tools (mkfs.ext4, mount, ...) so that the daemon does not fork for each (native/run.c). */
const TOOL_RUNNER = fileURLToPath(new URL("./sbx-run", import.meta.url));
/** The Node preload bound into every sandbox (fetch and http(s) through the egress proxy). */
const PRELOAD = fileURLToPath(new URL("./node-proxy.cjs", import.meta.url));
const PRELOAD_IMPL = fileURLToPath(new URL("./node-proxy-impl.cjs", import.meta.url));

/** Root mode's cache of the /etc paths links from /usr lead to: one host, one list, whichever daemon found it. */
const ETC_CACHE = "/run/sbx/etc-links.json";

export class HostNotReadyError extends Error {}

/** One sbx daemon: its listener, its sandboxes and its state dir. */
export class Daemon {
  private constructor(
    readonly url: string,
    readonly tokenPath: string | null,
    private readonly server: Server,
    private readonly manager: SandboxManager,
    private readonly stateDir: string,
    private readonly uids: Pick<UidRange, "release"> | null,
    private readonly log: Logger,
    /** The Prometheus endpoint, when config metricsListen asks for one. */
    private readonly metricsServer: Server | null,
  ) {}

  /** Checks the host, claims the state dir, reclaims what a crashed predecessor left, listens. */
  static async start(config: DaemonConfig, opts: { log?: Logger; env?: NodeJS.ProcessEnv } = {}): Promise<Daemon> {
    const log = opts.log ?? createLogger();
    const env = opts.env ?? process.env;
    parseListen(config.listen);
    const rootMode = process.getuid?.() === 0;

    for (const bundle of [SUPERVISOR, LAUNCHER, TOOL_RUNNER, PRELOAD, PRELOAD_IMPL]) if (!existsSync(bundle)) throw new Error(`${bundle} is missing: build @sbx/daemon first`);
    useToolRunner(TOOL_RUNNER);
    await fsp.mkdir(config.stateDir, { recursive: true, mode: 0o700 });
    await claimStateDir(config.stateDir);
    // Root mode: host uids of our own, never shared with another daemon's sandboxes.
    const uids = rootMode ? claimUidRange({ base: config.uidBase, count: config.uidCount, stateDir: config.stateDir }) : null;
    let blocks: UidRange | null = null;
    try {
      // And blocks of 65536 for sandboxes booted from an image, whose root is uid 0 of a namespace mapping a whole block.
      blocks = rootMode && config.rootSandboxes > 0 ? claimUidRange({ base: null, count: config.rootSandboxes * UID_BLOCK, stateDir: config.stateDir }) : null;
      return await Daemon.listen(config, uids, blocks, log, env);
    } catch (err) {
      uids?.release();
      blocks?.release();
      removeDaemonFiles(config.stateDir);
      throw err;
    }
  }

  private static async listen(config: DaemonConfig, uids: UidRange | null, blocks: UidRange | null, log: Logger, env: NodeJS.ProcessEnv): Promise<Daemon> {
    const { host, port } = parseListen(config.listen);
    const rootMode = uids !== null;
    const checks = checkHost({ trialUid: uids?.base ?? null, rootMode });
    if (checks.some((c) => !c.ok)) {
      throw new HostNotReadyError(`this host cannot isolate sandboxes, so the daemon will not start:\n${formatChecks(checks.filter((c) => !c.ok))}`);
    }
    // Reads all of /usr unless cached, then copies what sandboxes see of /etc: under way while the
    // rest of the start goes on. SBX_TEST_ETC_ROOT (tests only) stands a directory of theirs in for
    // the host's /etc, which tests never change.
    const etcBinds = cachedLinkedEtcPaths(rootMode ? ETC_CACHE : join(config.stateDir, "etc-links.json"));
    const etcView = etcBinds.then((linked) => {
      if (linked.length) log.info(`sandboxes see ${linked.length} more host /etc paths that links from /usr lead to: ${linked.join(", ")}`);
      return EtcView.open(join(config.stateDir, "etc"), { root: env.SBX_TEST_ETC_ROOT || "/etc", names: ETC_SHARED, linked }, log);
    });
    etcView.catch(() => {}); // awaited below; a start that fails before that closes nothing of it
    const { token, path: tokenPath, created } = await loadPrimaryToken(config.stateDir, env);
    if (created) log.info(`generated a new token in ${tokenPath} (mode 0600)`);
    const tokens = new Tokens([{ name: "default", token }, ...config.tenants]);

    // The API address is filled in once the server listens; proxies read it at decision time.
    const egress: DecideOptions = { pins: config.egressPins, daemonApi: { host, port }, approvedRanges: config.approvedRanges };
    // Each proxy connection costs two descriptors; the daemon keeps a reserve for everything else.
    const fdLimit = raiseOpenFileLimit();
    const egressConnections = config.egressBounds.connections ?? Math.max(64, Math.floor((Math.min(fdLimit, 1 << 20) - FD_RESERVE) / 2));
    const upstreamProxy = config.upstreamProxy ?? upstreamFromEnvironment(env);
    if (upstreamProxy) log.info(`egress goes out through the upstream proxy ${hostPort(upstreamProxy.host, upstreamProxy.port)} (CONNECT by ${upstreamProxy.connectBy}${upstreamProxy.noProxy.length ? `; direct: ${upstreamProxy.noProxy.join(", ")}` : ""})`);
    const egressShared = new EgressShared({ ...config.egressBounds, connections: egressConnections }, localAddresses, new Dialer(upstreamProxy));
    // TLS interception for secret hosts: the CA (made on first start), what upstreams are verified against, and what sandboxes trust.
    const ca = await CertificateAuthority.loadOrCreate(join(config.stateDir, "ca"));
    const upstream = upstreamTrust(config.extraCaCerts);
    const trustFiles = await writeSandboxTrust(join(config.stateDir, "lib"), ca.certPem, config.sandboxCaCerts);
    const denoPath = findDeno(config.deno);
    if (!denoPath) log.info(config.deno === false ? "sandboxes get no Deno (config deno: false)" : "no Deno binary found (the deno npm package beside the daemon, or config deno): sandboxes get none");
    const files = await prepareSandboxFiles(
      config.stateDir,
      { nodePath: process.execPath, supervisorPath: SUPERVISOR, preloadPath: PRELOAD, preloadImplPath: PRELOAD_IMPL, denoPath, ...replDrivers() },
      rootMode,
    );
    // checkHost refused to go on without a cgroup driver in root mode; rootless uses rlimits.
    const dynmods = rootMode ? (config.cgroupFavorDynmods ? await enableFavorDynmods() : dynmodsState()) : null;
    // Without favordynmods, a v2 sandbox is started in its cgroup rather than moved there (no wait).
    const cgroups = rootMode ? (detectCgroups("/sys/fs/cgroup", cgroupName(config.stateDir), !dynmods!.on) as CgroupDriver) : null;
    if (dynmods) {
      const bornIn = !dynmods.on && cgroups!.version === 2 ? "; sandboxes start in their cgroup (clone3 CLONE_INTO_CGROUP) instead" : "";
      const line = `cgroup joins: ${dynmods.detail}${config.cgroupFavorDynmods ? "" : " (config cgroupFavorDynmods: false)"}${bornIn}`;
      if (dynmods.on || bornIn) log.info(line);
      else log.warn(line);
    }
    // Read when scraped: nothing to report until the manager exists.
    let counted: SandboxManager | null = null;
    const metrics = new DaemonMetrics({
      sandboxes: () => counted?.metricsSource.sandboxes() ?? { owned: 0, pooled: 0 },
      tenantUsage: () => counted?.metricsSource.tenantUsage() ?? new Map(),
    });
    let metricsServer: Server | null = null;
    if (config.metricsListen) {
      const at = parseListen(config.metricsListen);
      metricsServer = await startMetricsServer(metrics, at.host, at.port).catch((err: Error) => {
        throw new Error(`cannot serve metrics on ${config.metricsListen}: ${err.message}`);
      });
      const m = metricsServer.address() as AddressInfo;
      // No token guards it: sandboxes must never reach it, whatever their allowNet says.
      (egress as { daemonMetrics: DecideOptions["daemonMetrics"] }).daemonMetrics = { host: m.address, port: m.port };
      log.info(`metrics on http://${m.family === "IPv6" ? `[${m.address}]` : m.address}:${m.port}/metrics`);
    }
    const manager = new SandboxManager({
      // A wildcard listen address is no host to put in a URL: the machine's name stands for it.
      expose: { bind: host, host: host === "0.0.0.0" || host === "::" ? hostname() : host },
      stateDir: config.stateDir,
      bwrapPath: findBwrap(env)!,
      launcherPath: LAUNCHER,
      ...files,
      uids,
      uidBlocks: blocks,
      sessionGraceMs: config.sessionGraceMs,
      maxSandboxesPerOwner: config.maxSandboxesPerToken,
      cgroups,
      seccomp: buildPolicy(hostArch()),
      etcView: await etcView,
      pidsPerSandbox: config.pidsPerSandbox,
      ptysPerSandbox: config.ptysPerSandbox,
      openFilesPerProcess: config.openFilesPerProcess,
      warmPool: config.warmPool,
      warmPoolMax: config.warmPoolMax,
      imageWarmPool: config.imageWarmPool,
      storageStock: config.storageStock,
      storageStockMax: config.storageStockMax,
      tenants: tokens,
      metrics,
      stallMs: config.stallMs,
      streamBytesPerSandbox: config.streamBytesPerSandbox,
      disk: config.disk,
      egress,
      egressShared,
      idPrefix: config.idPrefix,
      tls: { ca, upstreamTrust: upstream, bundleFd: trustFiles.bundleFd, systemBundleFd: trustFiles.systemBundleFd, caFd: trustFiles.caFd, javaStoreFd: trustFiles.javaStoreFd },
      log,
    });
    counted = manager;
    await manager.init();
    const hostState = new HostState(
      { idPrefix: config.idPrefix, maxSandboxes: config.maxSandboxes, operator: tokens.ownerOf(token)!, stateDir: config.stateDir, mode: rootMode ? "root" : "rootless", version: SBX_VERSION, metrics, log },
      manager,
    );
    const images = manager.volumes ? new ImageBuilder(manager.volumes, { mirror: config.imageMirror, concurrent: config.imageBuilds, log }) : null;
    const server = createApiServer({ manager, host: hostState, tokens, limits: { maxInFlight: 256, maxStreams: 1024, maxJsonDepth: 64, maxInFlightBytes: 16 << 20 }, log, images });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    (egress as { daemonApi: DecideOptions["daemonApi"] }).daemonApi = { host: addr.address, port: addr.port };
    const url = `ws://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
    const mode = rootMode
      ? `root mode: sandbox uids ${uids.base}..${uids.base + uids.count - 1}${blocks ? `, ${blocks.count / UID_BLOCK} blocks for image roots from ${blocks.base}` : ""}, cgroup v${cgroups!.version}, seccomp`
      : "rootless mode: seccomp and rlimits; memory, CPU and pids caps are not enforced without cgroups; disk caps /home and /tmp each";
    log.info(`listening on ${url} (${mode}; token ${tokenPath ?? "from SBX_TOKEN"}${config.idPrefix ? `; sandbox ids sbx_${config.idPrefix}_...` : ""})`);
    writeDaemonInfo({
      pid: process.pid, url, stateDir: config.stateDir, version: SBX_VERSION, startedAt: new Date().toISOString(), mode: rootMode ? "root" : "rootless",
      ...(uids ? { uids: [uids.base, uids.base + uids.count - 1] as [number, number] } : {}),
    });
    const ranges = uids && { release: () => (uids.release(), blocks?.release()) };
    return new Daemon(url, tokenPath, server, manager, config.stateDir, ranges, log, metricsServer);
  }

  /** Kills every sandbox and stops listening. */
  async close(): Promise<void> {
    this.server.close();
    this.server.closeAllConnections();
    this.metricsServer?.close();
    this.metricsServer?.closeAllConnections();
    await this.manager.shutdown();
    this.manager.closeFiles();
    this.uids?.release();
    removeDaemonFiles(this.stateDir);
    this.log.info("stopped");
  }
}

/** Each daemon's cgroups live under a name of its own, so daemons with other state dirs never touch them. */
function cgroupName(stateDir: string): string {
  return `sbx-${createHash("sha256").update(stateDir).digest("hex").slice(0, 12)}`;
}

/** One daemon per state dir: a second one would reclaim the first one's sandboxes. */
async function claimStateDir(stateDir: string): Promise<void> {
  const pid = daemonPid(stateDir);
  if (pid !== null) throw new Error(`another sbx daemon (pid ${pid}) is using the state dir ${stateDir}; \`sbx daemon stop --state-dir ${stateDir}\` stops it`);
  await fsp.writeFile(pidFile(stateDir), `${process.pid}\n`, { mode: 0o644 });
}
