import { readFileSync } from "node:fs";
import { defaultStateDir } from "@sbx/protocol";
import { ResolveMap } from "./egress/resolve-map.js";
import { parseDuration } from "./util/units.js";

/** Everything the daemon can be told, with its defaults. */
export interface DaemonConfig {
  /** host:port to listen on; port 0 picks a free one. */
  listen: string;
  stateDir: string;
  /** How long a "session" sandbox outlives its creator's connection, so a reconnect can adopt it. */
  sessionGraceMs: number;
  maxSandboxesPerToken: number;
  /** Tokens of further tenants, beside the primary one. */
  tokens: string[];
  /** First host uid given to sandboxes when running as root. */
  uidBase: number;
  /** Processes and threads one sandbox may have at once (cgroup pids.max). */
  pidsPerSandbox: number;
  /** Ptys one sandbox may hold at once (the max= of its own devpts). */
  ptysPerSandbox: number;
  /** RLIMIT_NOFILE of every sandbox process. */
  openFilesPerProcess: number;
  /** Sandboxes with default limits kept started ahead of demand (create takes one in milliseconds). */
  warmPool: number;
  /** egress.resolve: names pinned to addresses (like curl --resolve); an operator's decision. */
  egressPins: ResolveMap;
  /** egress.extraCaCerts: PEM files the proxy trusts (beside the system store) when it verifies a secret host's upstream. */
  extraCaCerts: string[];
}

export function defaultConfig(env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  return {
    listen: "127.0.0.1:7070",
    stateDir: defaultStateDir(env),
    sessionGraceMs: 5000,
    maxSandboxesPerToken: 500,
    tokens: [],
    uidBase: 200000,
    pidsPerSandbox: 1024,
    ptysPerSandbox: 64,
    openFilesPerProcess: 4096,
    warmPool: 2,
    egressPins: ResolveMap.empty,
    extraCaCerts: [],
  };
}

/** The config file's keys and how each is read; anything else in the file is an error. */
const FILE_KEYS: Record<string, (v: unknown, c: DaemonConfig) => void> = {
  listen: (v, c) => (c.listen = str("listen", v)),
  stateDir: (v, c) => (c.stateDir = str("stateDir", v)),
  sessionGrace: (v, c) => (c.sessionGraceMs = parseDuration(str("sessionGrace", v))),
  maxSandboxesPerToken: (v, c) => (c.maxSandboxesPerToken = int("maxSandboxesPerToken", v, 1)),
  tokens: (v, c) => {
    if (!Array.isArray(v) || v.some((t) => typeof t !== "string" || t.length < 16)) throw new Error("config.tokens: must be an array of strings of at least 16 characters");
    c.tokens = v as string[];
  },
  uidBase: (v, c) => (c.uidBase = int("uidBase", v, 1000)),
  pidsPerSandbox: (v, c) => (c.pidsPerSandbox = int("pidsPerSandbox", v, 16)),
  ptysPerSandbox: (v, c) => {
    // devpts refuses a max= above the kernel's NR_UNIX98_PTY_MAX.
    if (Number.isInteger(v) && (v as number) > 1 << 20) throw new Error("config.ptysPerSandbox: must be at most 1048576");
    c.ptysPerSandbox = int("ptysPerSandbox", v, 1);
  },
  openFilesPerProcess: (v, c) => (c.openFilesPerProcess = int("openFilesPerProcess", v, 64)),
  warmPool: (v, c) => (c.warmPool = int("warmPool", v, 0)),
  egress: (v, c) => {
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("config.egress: must be an object");
    for (const [key, value] of Object.entries(v)) {
      if (key === "resolve") {
        if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("config.egress.resolve: must map NAME[:PORT] to ADDR[:PORT]");
        c.egressPins = ResolveMap.parse(value as Record<string, string>);
      } else if (key === "extraCaCerts") {
        if (!Array.isArray(value) || value.some((f) => typeof f !== "string" || f.length === 0)) throw new Error("config.egress.extraCaCerts: must be an array of PEM file paths");
        c.extraCaCerts = value as string[];
      } else {
        throw new Error(`config.egress: unknown key '${key}' (known: resolve, extraCaCerts)`);
      }
    }
  },
};

function str(key: string, v: unknown): string {
  if (typeof v !== "string" || v.length === 0) throw new Error(`config.${key}: must be a non-empty string`);
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
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`listen address '${listen}' is not HOST:PORT`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}
