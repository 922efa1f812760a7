import { readFileSync } from "node:fs";
import { defaultStateDir } from "@sbx/protocol";
import { ResolveMap } from "./egress/policy/resolve-map.js";
import { parseApprovedRanges } from "./egress/policy/addresses.js";
import { parseUpstreamProxy, type UpstreamProxy } from "./egress/proxy/dial.js";
import type { Prefix } from "./egress/policy/ip.js";
import { DEFAULT_BOUNDS, type EgressBounds } from "./egress/proxy/limits.js";
import { DEFAULT_DISK_POLICY, type DiskPolicy } from "./sandbox/disk-budget.js";
import { parseBytes, parseDuration } from "./util/units.js";
import { parseTenants, type TenantQuotas } from "./server/tenants.js";
import { idPrefixOf } from "./fleet/host-state.js";
import { DEFAULT_MIRROR } from "./volumes/build.js";
import { readTokensFile } from "./fleet/tokens-file.js";
import { DEFAULT_STREAM_BUDGET } from "./streams/budget.js";
import { CHANNEL_INITIAL_WINDOW } from "./channel/framing.js";

/** Everything the daemon can be told, with its defaults. */
export interface DaemonConfig {
  /** host:port to listen on; port 0 picks a free one. */
  listen: string;
  stateDir: string;
  /** How long a "session" sandbox outlives its creator's connection, so a reconnect can adopt it. */
  sessionGraceMs: number;
  maxSandboxesPerToken: number;
  /** Further tenants beside the primary token's ("default"): `tenants` entries, and `tokens` and `tokensFile` (named token-2, token-3, ...). */
  tenants: Array<{ name: string; token: string; quotas: TenantQuotas }>;
  /** First host uid given to sandboxes when running as root; null picks a range no other daemon holds. */
  uidBase: number | null;
  /** How many host uids (so live sandboxes, pool included) this daemon may use in root mode. */
  uidCount: number;
  /** How many sandboxes booted from an image (`root`) may run at once: each takes a block of 65536 host uids (root mode). */
  rootSandboxes: number;
  /** cgroupFavorDynmods: turn on the cgroup2 mount's favordynmods at start (root mode), so joining a sandbox's cgroup never waits for an RCU grace period (see cgroups/dynmods.ts); host-wide. */
  cgroupFavorDynmods: boolean;
  /** Processes and threads one sandbox may have at once (cgroup pids.max). */
  pidsPerSandbox: number;
  /** Ptys one sandbox may hold at once (the max= of its own devpts). */
  ptysPerSandbox: number;
  /** The Deno binary bound into every sandbox: a path, false for none, null to take the deno npm package's. */
  deno: string | false | null;
  /** RLIMIT_NOFILE of every sandbox process. */
  openFilesPerProcess: number;
  /** Sandboxes with default limits kept started ahead of demand (create takes one in milliseconds). */
  warmPool: number;
  /** The most sandboxes the warm pool grows to when creates outrun it, all limits together (at least warmPool). */
  warmPoolMax: number;
  /** Sandboxes kept booted per image (a snapshot root) after a create from it, for the 4 booted last (root mode); 0: none. */
  imageWarmPool: number;
  /** Default-size sandbox file systems kept formatted and mounted ahead of demand (root mode), so creates skip mkfs and the mount. */
  storageStock: number;
  /** How far bursts of creates may grow the storage stock (at least storageStock); it shrinks back by one a minute. */
  storageStockMax: number;
  /** stallTimeout: a call to a sandbox waiting this long makes the daemon check its supervisor still answers (else the sandbox ends). */
  stallMs: number;
  /** streamBytesPerSandbox: the most of one sandbox's output the daemon holds unread (all its streams' windows together); its writers wait beyond it. */
  streamBytesPerSandbox: number;
  /** diskReserve, diskOvercommit, diskMinFree: what sandboxes' disk caps may promise (root mode). */
  disk: DiskPolicy;
  /** egress.resolve: names pinned to addresses (like curl --resolve); an operator's decision. */
  egressPins: ResolveMap;
  /** egress.extraCaCerts: PEM files the proxy trusts (beside the system store) when it verifies a secret host's upstream. */
  extraCaCerts: string[];
  /** egress.sandboxCaCerts: PEM files every sandbox trusts too (a gateway that re-signs TLS, an internal CA). */
  sandboxCaCerts: string[];
  /** egress.allowedRanges: private blocks every sandbox may reach by name or address (an internal mirror); never metadata. */
  approvedRanges: Prefix[];
  /** egress.upstreamProxy: the operator's HTTP proxy allowed traffic goes out through (null: the daemon's HTTPS_PROXY, if set). */
  upstreamProxy: UpstreamProxy | null;
  /** metricsListen: host:port of the Prometheus /metrics endpoint; null (the default) serves none. */
  metricsListen: string | null;
  /** logFormat: "text" lines, or one JSON object per line with the request id and tenant of the call a line belongs to. */
  logFormat: "text" | "json";
  /** egress.maxConnections and friends: what one sandbox's (and all sandboxes') egress may hold; `connections` null derives it from the open-file limit. */
  egressBounds: Omit<EgressBounds, "connections"> & { connections: number | null };
  /** idPrefix: names this host in every sandbox, volume and snapshot id (sbx_<prefix>_..., vol_<prefix>_..., snap_<prefix>_...), for a fleet gateway; null: none. */
  idPrefix: string | null;
  /** The most sandboxes this daemon runs at once (all tokens); creates beyond it are refused. */
  maxSandboxes: number;
  /** imageMirror: the Debian mirror image.build fetches from; tenants never choose it. */
  imageMirror: string;
  /** imageBuilds: how many image.build calls run at once (each is tens of seconds of mmdebstrap); more are refused. */
  imageBuilds: number;
}

export function defaultConfig(env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  return {
    listen: "127.0.0.1:7070",
    stateDir: defaultStateDir(env),
    sessionGraceMs: 5000,
    maxSandboxesPerToken: 500,
    tenants: [],
    uidBase: null,
    uidCount: 65536,
    rootSandboxes: 32,
    cgroupFavorDynmods: true,
    pidsPerSandbox: 1024,
    ptysPerSandbox: 64,
    openFilesPerProcess: 4096,
    deno: null,
    warmPool: 2,
    warmPoolMax: 8,
    imageWarmPool: 0,
    storageStock: 2,
    storageStockMax: 16,
    stallMs: 30_000,
    streamBytesPerSandbox: DEFAULT_STREAM_BUDGET,
    disk: { ...DEFAULT_DISK_POLICY },
    egressPins: ResolveMap.empty,
    extraCaCerts: [],
    sandboxCaCerts: [],
    approvedRanges: [],
    upstreamProxy: null,
    egressBounds: { ...DEFAULT_BOUNDS, connections: null },
    metricsListen: null,
    logFormat: "text",
    idPrefix: null,
    maxSandboxes: 1000,
    imageMirror: DEFAULT_MIRROR,
    imageBuilds: 1,
  };
}

/** Checks a log format named in the config or on the command line. */
export function parseLogFormat(v: unknown, where: string): "text" | "json" {
  if (v !== "text" && v !== "json") throw new Error(`${where}: must be "text" or "json"`);
  return v;
}

/** The config file's keys and how each is read; anything else in the file is an error. */
const FILE_KEYS: Record<string, (v: unknown, c: DaemonConfig) => void> = {
  listen: (v, c) => (c.listen = str("listen", v)),
  stateDir: (v, c) => (c.stateDir = str("stateDir", v)),
  sessionGrace: (v, c) => (c.sessionGraceMs = parseDuration(str("sessionGrace", v))),
  maxSandboxesPerToken: (v, c) => (c.maxSandboxesPerToken = int("maxSandboxesPerToken", v, 1)),
  tokens: (v, c) => {
    if (!Array.isArray(v) || v.some((t) => typeof t !== "string" || t.length < 16)) throw new Error("config.tokens: must be an array of strings of at least 16 characters");
    addPlainTokens(c, v as string[]);
  },
  tokensFile: (v, c) => addPlainTokens(c, readTokensFile(str("tokensFile", v))),
  tenants: (v, c) => c.tenants.push(...parseTenants(v)),
  idPrefix: (v, c) => (c.idPrefix = idPrefixOf(str("idPrefix", v))),
  maxSandboxes: (v, c) => (c.maxSandboxes = int("maxSandboxes", v, 1)),
  imageMirror: (v, c) => (c.imageMirror = mirrorUrl(str("imageMirror", v))),
  imageBuilds: (v, c) => (c.imageBuilds = int("imageBuilds", v, 1)),
  uidBase: (v, c) => (c.uidBase = int("uidBase", v, 1000)),
  uidCount: (v, c) => (c.uidCount = int("uidCount", v, 16)),
  rootSandboxes: (v, c) => {
    // Blocks of 65536 from 200000 must stay below 2^31 (some tools read uids as signed).
    if (Number.isInteger(v) && (v as number) > 16_000) throw new Error("config.rootSandboxes: must be at most 16000 (each takes 65536 host uids)");
    c.rootSandboxes = int("rootSandboxes", v, 0);
  },
  pidsPerSandbox: (v, c) => (c.pidsPerSandbox = int("pidsPerSandbox", v, 16)),
  ptysPerSandbox: (v, c) => {
    // devpts refuses a max= above the kernel's NR_UNIX98_PTY_MAX.
    if (Number.isInteger(v) && (v as number) > 1 << 20) throw new Error("config.ptysPerSandbox: must be at most 1048576");
    c.ptysPerSandbox = int("ptysPerSandbox", v, 1);
  },
  openFilesPerProcess: (v, c) => (c.openFilesPerProcess = int("openFilesPerProcess", v, 64)),
  deno: (v, c) => (c.deno = v === false ? false : str("deno", v)),
  warmPool: (v, c) => (c.warmPool = int("warmPool", v, 0)),
  warmPoolMax: (v, c) => (c.warmPoolMax = int("warmPoolMax", v, 0)),
  imageWarmPool: (v, c) => {
    if (Number.isInteger(v) && (v as number) > 64) throw new Error("config.imageWarmPool: must be at most 64");
    c.imageWarmPool = int("imageWarmPool", v, 0);
  },
  storageStock: (v, c) => (c.storageStock = int("storageStock", v, 0)),
  storageStockMax: (v, c) => (c.storageStockMax = int("storageStockMax", v, 0)),
  diskReserve: (v, c) => (c.disk.reserve = bool("diskReserve", v)),
  cgroupFavorDynmods: (v, c) => (c.cgroupFavorDynmods = bool("cgroupFavorDynmods", v)),
  diskOvercommit: (v, c) => {
    if (typeof v !== "number" || !(v >= 1)) throw new Error("config.diskOvercommit: must be a number of at least 1 (1: caps add up to at most the free space)");
    c.disk.overcommit = v;
  },
  diskMinFree: (v, c) => (c.disk.minFreeBytes = atLeast("diskMinFree", typeof v === "number" ? v : parseBytes(str("diskMinFree", v)), 0)),
  metricsListen: (v, c) => {
    c.metricsListen = str("metricsListen", v);
    parseListenAs("config.metricsListen", c.metricsListen);
  },
  logFormat: (v, c) => (c.logFormat = parseLogFormat(v, "config.logFormat")),
  stallTimeout: (v, c) => (c.stallMs = atLeast("stallTimeout", parseDuration(str("stallTimeout", v)), 100)),
  streamBytesPerSandbox: (v, c) => (c.streamBytesPerSandbox = atLeast("streamBytesPerSandbox", typeof v === "number" ? v : parseBytes(str("streamBytesPerSandbox", v)), CHANNEL_INITIAL_WINDOW)),
  egress: (v, c) => {
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("config.egress: must be an object");
    for (const [key, value] of Object.entries(v)) {
      if (key === "resolve") {
        if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("config.egress.resolve: must map NAME[:PORT] to ADDR[:PORT]");
        c.egressPins = ResolveMap.parse(value as Record<string, string>);
      } else if (key === "extraCaCerts" || key === "sandboxCaCerts") {
        if (!Array.isArray(value) || value.some((f) => typeof f !== "string" || f.length === 0)) throw new Error(`config.egress.${key}: must be an array of PEM file paths`);
        c[key] = value as string[];
      } else if (key === "upstreamProxy") {
        c.upstreamProxy = parseUpstreamProxy(value);
      } else if (key === "allowedRanges") {
        if (!Array.isArray(value) || value.some((r) => typeof r !== "string")) throw new Error("config.egress.allowedRanges: must be an array of CIDR blocks such as \"10.20.0.0/16\"");
        c.approvedRanges = parseApprovedRanges(value as string[]);
      } else if (key in EGRESS_BOUNDS) {
        const [field, min, read] = EGRESS_BOUNDS[key]!;
        c.egressBounds[field] = read(`egress.${key}`, value, min);
      } else {
        throw new Error(`config.egress: unknown key '${key}' (known: resolve, extraCaCerts, sandboxCaCerts, allowedRanges, upstreamProxy, ${Object.keys(EGRESS_BOUNDS).join(", ")})`);
      }
    }
  },
};

/**
 * Tokens without a tenant entry (`tokens`, `tokensFile`) are tenants without quotas named
 * token-2, token-3, ... in the order given, both keys together (the primary token is "default").
 */
function addPlainTokens(c: DaemonConfig, tokens: string[]): void {
  let n = c.tenants.filter((t) => /^token-\d+$/.test(t.name)).length;
  c.tenants.push(...tokens.map((token) => ({ name: `token-${(n++) + 2}`, token, quotas: {} })));
}

/** The config's egress bounds: key → the field it sets, its minimum, and how it is read. */
const EGRESS_BOUNDS: Record<string, [keyof EgressBounds, number, (key: string, v: unknown, min: number) => number]> = {
  maxConnectionsPerSandbox: ["connectionsPerSandbox", 4, int],
  maxConnections: ["connections", 16, int],
  maxConnectionsPerToken: ["connectionsPerToken", 4, int],
  tunnelIdleTimeout: ["idleMs", 1000, (key, v, min) => atLeast(key, parseDuration(str(key, v)), min)],
  firstRequestTimeout: ["firstRequestMs", 100, (key, v, min) => atLeast(key, parseDuration(str(key, v)), min)],
  maxHeldBytesPerSandbox: ["heldBytesPerSandbox", 1 << 20, (key, v, min) => atLeast(key, typeof v === "number" ? v : parseBytes(str(key, v)), min)],
  maxHeldBytes: ["heldBytes", 1 << 20, (key, v, min) => atLeast(key, typeof v === "number" ? v : parseBytes(str(key, v)), min)],
};

/** A Debian mirror: an http(s) or file URL, without spaces or commas (mmdebstrap reads those as lists). */
function mirrorUrl(v: string): string {
  let url: URL | null = null;
  try {
    url = new URL(v);
  } catch {}
  if (!url || !["http:", "https:", "file:"].includes(url.protocol) || /[\s,]/.test(v)) {
    throw new Error(`config.imageMirror: must be an http://, https:// or file:/// URL of a Debian mirror, got '${v.slice(0, 200)}'`);
  }
  return v;
}

function atLeast(key: string, n: number, min: number): number {
  if (!Number.isFinite(n) || n < min) throw new Error(`config.${key}: must be at least ${min}`);
  return n;
}

function str(key: string, v: unknown): string {
  if (typeof v !== "string" || v.length === 0) throw new Error(`config.${key}: must be a non-empty string`);
  return v;
}

function bool(key: string, v: unknown): boolean {
  if (typeof v !== "boolean") throw new Error(`config.${key}: must be true or false`);
  return v;
}

function int(key: string, v: unknown, min: number): number {
  if (!Number.isInteger(v) || (v as number) < min) throw new Error(`config.${key}: must be an integer of at least ${min}`);
  return v as number;
}

export function applyConfigFile(config: DaemonConfig, path: string): void {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  if (!data || typeof data !== "object" || Array.isArray(data)) throw new Error(`config file ${path}: must hold a JSON object`);
  for (const [key, value] of Object.entries(data)) {
    const apply = FILE_KEYS[key];
    if (!apply) throw new Error(`config file ${path}: unknown key '${key}' (known: ${Object.keys(FILE_KEYS).join(", ")})`);
    apply(value, config);
  }
}

export function parseListen(listen: string): { host: string; port: number } {
  return parseListenAs("listen address", listen);
}

/** HOST:PORT (IPv6 in brackets) as host and port; the error starts with `what`. */
export function parseListenAs(what: string, listen: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`${what} '${listen}' is not HOST:PORT`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}
