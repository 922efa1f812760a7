import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { TOKEN_FILE } from "@sbx/protocol";
import { DEFAULT_PERIOD_MS, type TenantQuotas } from "./tenants.js";

const digest = (token: string) => createHash("sha256").update(token, "utf8").digest();

/** A tenant: a name (for logs, metrics and usage), the token it authenticates with, and its quotas. */
export interface TenantToken {
  name: string;
  token: string;
  quotas?: TenantQuotas;
}

/**
 * The tokens this daemon accepts. Each token is a tenant: it sees only the sandboxes it
 * created. Only SHA-256 digests are kept, compared in constant time.
 */
export class Tokens {
  private readonly digests: Buffer[];
  private readonly tenants = new Map<string, TenantToken>();

  constructor(tenants: readonly TenantToken[]) {
    this.digests = tenants.map((t) => digest(t.token));
    tenants.forEach((t, i) => this.tenants.set(this.digests[i]!.toString("hex"), t));
  }

  /** The owner key for a presented token, or null if it is not one of ours. */
  ownerOf(presented: string): string | null {
    const d = digest(presented);
    let match: Buffer | null = null;
    for (const known of this.digests) if (timingSafeEqual(d, known)) match = known;
    return match ? match.toString("hex") : null;
  }

  /** The tenant name of an owner key. */
  nameOf(owner: string): string {
    return this.tenants.get(owner)?.name ?? "unknown";
  }

  quotasOf(owner: string): TenantQuotas {
    return this.tenants.get(owner)?.quotas ?? {};
  }

  /** How far back the longest quota period looks. */
  get horizonMs(): number {
    return Math.max(DEFAULT_PERIOD_MS, ...[...this.tenants.values()].map((t) => t.quotas?.periodMs ?? 0));
  }
}

/** The primary token: SBX_TOKEN if set, else the token file, created (0600) on first start. */
export async function loadPrimaryToken(stateDir: string, env: NodeJS.ProcessEnv): Promise<{ token: string; path: string | null; created: boolean }> {
  if (env.SBX_TOKEN) return { token: env.SBX_TOKEN, path: null, created: false };
  const path = join(stateDir, TOKEN_FILE);
  try {
    const token = (await fsp.readFile(path, "utf8")).trim();
    if (token.length >= 16) return { token, path, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const token = randomBytes(32).toString("base64url");
  await fsp.writeFile(path, token + "\n", { mode: 0o600 });
  await fsp.chmod(path, 0o600);
  return { token, path, created: true };
}

/** The bearer token of an upgrade request, if it carries one. */
export function bearerOf(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m ? m[1]! : null;
}
