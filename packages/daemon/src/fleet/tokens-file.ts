import { readFileSync } from "node:fs";

/**
 * Tenant tokens from a file, one per line (blank lines and `#` comments skipped): how a fleet
 * hands the same tokens to every daemon and gateway from one Kubernetes Secret, without
 * writing them into a config file.
 */
export function readTokensFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`config.tokensFile: cannot read ${path}: ${(err as Error).message}`);
  }
  const tokens = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const short = tokens.findIndex((t) => t.length < 16 || /\s/.test(t));
  if (short >= 0) throw new Error(`config.tokensFile: ${path}: token ${short + 1} is shorter than 16 characters or holds spaces`);
  return tokens;
}
