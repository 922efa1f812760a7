import { readFileSync } from "node:fs";
import { readTokensFile } from "./server/tokens.js";
import { checkDaemonUrl } from "./discovery/discovery.js";
import { SERVICE_ACCOUNT_DIR, inClusterApiUrl } from "./discovery/kube-api.js";

/** Where the daemons come from. */
export type DiscoveryConfig =
  | { kind: "static"; urls: string[] }
  | { kind: "kubernetes"; service: string; namespace: string; portName: string | null; apiUrl: string; tokenFile: string | null; caFile: string | null };

/** Everything the gateway can be told. */
export interface GatewayConfig {
  /** host:port to listen on; port 0 picks a free one. */
  listen: string;
  /** Tokens clients may connect with (tokensFile, one file or several): the fleet's tenants, which every daemon accepts too. */
  tokens: string[];
  /** The daemons' operator (primary) token, for daemon.info (daemonTokenFile or SBX_DAEMON_TOKEN). */
  daemonToken: string;
  discovery: DiscoveryConfig;
  /** Client connections at once; more are refused with HTTP 503. */
  maxConnections: number;
  /** Hosts placement asks for fresh figures before choosing one. */
  placementCandidates: number;
  /** Control-link ping interval; a daemon silent for two is lost. */
  heartbeatMs: number;
  /** Bound connections (`bind=` in the client's URL) go to the native relay once routed (see NativeRelay). */
  nativeRelay: boolean;
}

/** What flags and the config file may say; read into a GatewayConfig by `resolveConfig`. */
export interface GatewaySettings {
  listen?: string;
  /** One file or several: a plain list (the daemons' tokensFile) and each tenant's own tokenFile. */
  tokensFile?: string | string[];
  daemonTokenFile?: string;
  daemons?: string[];
  kubernetes?: { service?: string; namespace?: string; portName?: string; apiUrl?: string; tokenFile?: string; caFile?: string };
  maxConnections?: number;
  placementCandidates?: number;
  heartbeat?: string;
  nativeRelay?: boolean;
}

const KEYS = ["listen", "tokensFile", "daemonTokenFile", "daemons", "kubernetes", "maxConnections", "placementCandidates", "heartbeat", "nativeRelay"];
const KUBE_KEYS = ["service", "namespace", "portName", "apiUrl", "tokenFile", "caFile"];

/** Reads a JSON config file; unknown keys are errors naming them. */
export function readConfigFile(path: string): GatewaySettings {
  let data: any;
  try {
    data = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  if (!data || typeof data !== "object" || Array.isArray(data)) throw new Error(`config file ${path}: must hold a JSON object`);
  for (const key of Object.keys(data)) if (!KEYS.includes(key)) throw new Error(`config file ${path}: unknown key '${key}' (known: ${KEYS.join(", ")})`);
  if (data.kubernetes !== undefined) {
    if (!data.kubernetes || typeof data.kubernetes !== "object") throw new Error(`config file ${path}: kubernetes must be an object`);
    for (const key of Object.keys(data.kubernetes)) if (!KUBE_KEYS.includes(key)) throw new Error(`config file ${path}: unknown key 'kubernetes.${key}' (known: ${KUBE_KEYS.join(", ")})`);
  }
  return data as GatewaySettings;
}

function positiveInt(key: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`${key}: must be a whole number of at least 1`);
  return v as number;
}

function flag(key: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== "boolean") throw new Error(`${key}: must be true or false`);
  return v;
}

function durationMs(key: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const m = /^([0-9]{1,9})(ms|s|m)$/.exec(v);
  if (!m) throw new Error(`${key}: must be a duration such as "500ms", "5s" or "1m"`);
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as "ms" | "s" | "m"];
  if (ms < 100) throw new Error(`${key}: must be at least 100ms`);
  return ms;
}

/** Turns settings (file, then flags over it) and the environment into a checked config. */
export function resolveConfig(s: GatewaySettings, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const files = typeof s.tokensFile === "string" ? [s.tokensFile] : s.tokensFile;
  if (files !== undefined && (!Array.isArray(files) || files.some((f) => typeof f !== "string" || f.length === 0))) {
    throw new Error("tokensFile: must be a file path or an array of file paths");
  }
  if (!files?.length) throw new Error("tokensFile (--tokens-file) is required: the tokens clients may connect with, one per line");
  const tokens = files.flatMap((f) => readTokensFile(f));
  const daemonToken = s.daemonTokenFile ? readTokensFile(s.daemonTokenFile, "daemonTokenFile")[0] : env.SBX_DAEMON_TOKEN;
  if (!daemonToken) throw new Error("the daemons' operator token is required: daemonTokenFile (--daemon-token-file) or SBX_DAEMON_TOKEN");
  if (s.daemons?.length && s.kubernetes) throw new Error("give either daemons (static discovery) or kubernetes, not both");
  let discovery: DiscoveryConfig;
  if (s.daemons?.length) {
    discovery = { kind: "static", urls: s.daemons.map(checkDaemonUrl) };
  } else if (s.kubernetes) {
    const k = s.kubernetes;
    if (!k.service) throw new Error("kubernetes.service (--kubernetes-service) is required: the daemons' headless Service");
    let namespace = k.namespace;
    if (!namespace) {
      try {
        namespace = readFileSync(`${SERVICE_ACCOUNT_DIR}/namespace`, "utf8").trim();
      } catch {
        throw new Error(`kubernetes.namespace (--kubernetes-namespace) is required outside a pod (${SERVICE_ACCOUNT_DIR}/namespace is missing)`);
      }
    }
    const apiUrl = k.apiUrl ?? inClusterApiUrl(env);
    if (!apiUrl) throw new Error("kubernetes.apiUrl is required outside a pod (KUBERNETES_SERVICE_HOST is not set)");
    discovery = {
      kind: "kubernetes",
      service: k.service,
      namespace,
      portName: k.portName ?? null,
      apiUrl,
      tokenFile: k.tokenFile ?? (k.apiUrl ? null : `${SERVICE_ACCOUNT_DIR}/token`),
      caFile: k.caFile ?? (k.apiUrl ? null : `${SERVICE_ACCOUNT_DIR}/ca.crt`),
    };
  } else {
    throw new Error("no daemons: give --daemon URL (repeatable) or --kubernetes-service NAME");
  }
  return {
    listen: s.listen ?? "0.0.0.0:7070",
    tokens,
    daemonToken,
    discovery,
    maxConnections: positiveInt("maxConnections", s.maxConnections, 4096),
    placementCandidates: positiveInt("placementCandidates", s.placementCandidates, 3),
    heartbeatMs: durationMs("heartbeat", s.heartbeat, 5000),
    nativeRelay: flag("nativeRelay", s.nativeRelay, true),
  };
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`listen address '${listen}' is not HOST:PORT`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}
