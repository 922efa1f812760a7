import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

const digest = (token: string) => createHash("sha256").update(token, "utf8").digest();

/**
 * The tokens the gateway accepts: the fleet's tenants, each of which every daemon behind it
 * accepts too (the daemons, not the gateway, keep tenants apart). As in the daemon, only
 * SHA-256 digests are kept and every one is compared in constant time.
 */
export class Tokens {
  private readonly digests: Buffer[];

  constructor(tokens: string[]) {
    if (tokens.length === 0) throw new Error("the gateway needs at least one client token (tokensFile)");
    this.digests = tokens.map(digest);
  }

  accepts(presented: string): boolean {
    const d = digest(presented);
    let match = false;
    for (const known of this.digests) if (timingSafeEqual(d, known)) match = true;
    return match;
  }
}

/** The bearer token of an upgrade request, if it carries one. */
export function bearerOf(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m ? m[1]! : null;
}

/** Tokens from a file, one per line (blank lines and `#` comments skipped), as the daemon's tokensFile. */
export function readTokensFile(path: string, what = "tokensFile"): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`${what}: cannot read ${path}: ${(err as Error).message}`);
  }
  const tokens = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const bad = tokens.findIndex((t) => t.length < 16 || /\s/.test(t));
  if (bad >= 0) throw new Error(`${what}: ${path}: token ${bad + 1} is shorter than 16 characters or holds spaces`);
  return tokens;
}
