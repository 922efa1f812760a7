import { readFileSync } from "node:fs";
import { parseBytes, parseDuration } from "../util/units.js";

/**
 * What one tenant may use (config `tenants[].quotas`); absent keys are unlimited. CPU-seconds
 * and GB-seconds count over a rolling `period` (default 24h), ended and running sandboxes alike.
 */
export interface TenantQuotas {
  /** Live sandboxes at once. */
  sandboxes?: number;
  /** The sum of live sandboxes' memory limits, in bytes. */
  memoryBytes?: number;
  cpuSeconds?: number;
  gbSeconds?: number;
  periodMs?: number;
}

export interface TenantConfig {
  name: string;
  token: string;
  quotas: TenantQuotas;
}

/** The period tenants' CPU- and GB-second quotas count over unless they name one. */
export const DEFAULT_PERIOD_MS = 24 * 3_600_000;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const QUOTA_KEYS = ["sandboxes", "memory", "cpuSeconds", "gbSeconds", "period"];

/**
 * Reads the config's `tenants`: `[{ name, token | tokenFile, quotas? }]`. Throws naming the
 * entry and the problem (a token is never echoed).
 *
 * @example parseTenants([{ name: "grading", tokenFile: "/etc/sbx/grading.token", quotas: { sandboxes: 50, memory: "64GiB", cpuSeconds: 36000, period: "24h" } }])
 */
export function parseTenants(value: unknown): TenantConfig[] {
  if (!Array.isArray(value)) throw new Error("config.tenants: must be an array of { name, token | tokenFile, quotas? }");
  const seen = new Set<string>();
  return value.map((entry, i) => {
    const where = `config.tenants[${i}]`;
    if (!entry || typeof entry !== "object" || Array.isArray(entry)) throw new Error(`${where}: must be an object { name, token | tokenFile, quotas? }`);
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) if (!["name", "token", "tokenFile", "quotas"].includes(key)) throw new Error(`${where}: unknown key '${key}' (known: name, token, tokenFile, quotas)`);
    if (typeof e.name !== "string" || !NAME.test(e.name) || e.name === "default" || /^token-\d+$/.test(e.name)) {
      throw new Error(`${where}.name: must be 1-63 letters, digits, '.', '_' or '-' (and not 'default' or 'token-N', which name the other tokens)`);
    }
    if (seen.has(e.name)) throw new Error(`${where}.name: '${e.name}' names two tenants`);
    seen.add(e.name);
    let token: string;
    if (typeof e.token === "string" && e.tokenFile === undefined) token = e.token;
    else if (typeof e.tokenFile === "string" && e.token === undefined) {
      try {
        token = readFileSync(e.tokenFile, "utf8").trim();
      } catch (err) {
        throw new Error(`${where}.tokenFile: ${e.tokenFile} cannot be read (${(err as Error).message})`);
      }
    } else throw new Error(`${where}: give exactly one of token and tokenFile`);
    if (token.length < 16) throw new Error(`${where}: the token must be at least 16 characters`);
    return { name: e.name, token, quotas: parseQuotas(e.quotas, `${where}.quotas`) };
  });
}

function parseQuotas(value: unknown, where: string): TenantQuotas {
  if (value === undefined) return {};
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error(`${where}: must be an object`);
  const q = value as Record<string, unknown>;
  for (const key of Object.keys(q)) if (!QUOTA_KEYS.includes(key)) throw new Error(`${where}: unknown key '${key}' (known: ${QUOTA_KEYS.join(", ")})`);
  const count = (key: string): number | undefined => {
    const v = q[key];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !(v >= 0)) throw new Error(`${where}.${key}: must be a number of at least 0`);
    return v;
  };
  const out: TenantQuotas = {};
  const sandboxes = count("sandboxes");
  if (sandboxes !== undefined) out.sandboxes = Math.floor(sandboxes);
  if (q.memory !== undefined) {
    try {
      out.memoryBytes = typeof q.memory === "number" ? q.memory : parseBytes(String(q.memory));
    } catch (err) {
      throw new Error(`${where}.memory: ${(err as Error).message}`);
    }
  }
  const cpu = count("cpuSeconds");
  if (cpu !== undefined) out.cpuSeconds = cpu;
  const gb = count("gbSeconds");
  if (gb !== undefined) out.gbSeconds = gb;
  if (q.period !== undefined) {
    try {
      out.periodMs = parseDuration(String(q.period));
    } catch (err) {
      throw new Error(`${where}.period: ${(err as Error).message}`);
    }
  }
  return out;
}
