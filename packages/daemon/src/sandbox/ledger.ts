import { appendFileSync, readFileSync } from "node:fs";
import type { Logger } from "../util/log.js";
import type { Usage } from "./usage.js";

/** One ended sandbox in the ledger: who ran it, when, and what it used. */
export interface LedgerEntry extends Usage {
  tenant: string;
  /** The token's owner key (a SHA-256 of it), so quotas find their tenant's entries. */
  owner: string;
  id: string;
  createdAt: string;
  endedAt: string;
}

/**
 * Every ended sandbox's final usage, one JSON line each in `<state>/usage/ledger.jsonl`, kept
 * across restarts: the billing data (`sbx usage --tenant … --since …`) and what tenants' CPU-
 * and GB-second quotas count. Recent entries stay in memory for the quotas.
 */
export class UsageLedger {
  private recent: LedgerEntry[] = [];

  constructor(
    readonly path: string,
    /** How far back quotas look (the longest tenant period); older entries are not kept in memory. */
    private readonly horizonMs: number,
    private readonly log: Logger,
  ) {}

  /** Loads the entries within the horizon. */
  load(now = Date.now()): void {
    this.recent = readLedger(this.path).filter((e) => now - Date.parse(e.endedAt) <= this.horizonMs);
  }

  append(entry: LedgerEntry): void {
    try {
      appendFileSync(this.path, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
    } catch (err) {
      this.log.warn(`could not add ${entry.id} to the usage ledger: ${(err as Error).message}`);
    }
    this.recent.push(entry);
    const cutoff = Date.now() - this.horizonMs;
    if (Date.parse(this.recent[0]!.endedAt) < cutoff) this.recent = this.recent.filter((e) => Date.parse(e.endedAt) >= cutoff);
  }

  /** CPU-seconds and GB-seconds of an owner's sandboxes that ended since `since`. */
  usedSince(owner: string, since: number): { cpuSeconds: number; gbSeconds: number } {
    let cpuSeconds = 0;
    let gbSeconds = 0;
    for (const e of this.recent) {
      if (e.owner !== owner || Date.parse(e.endedAt) < since) continue;
      cpuSeconds += e.cpuSeconds;
      gbSeconds += e.memoryGbSeconds;
    }
    return { cpuSeconds, gbSeconds };
  }
}

/** Every entry of a ledger file (lines that do not parse are skipped: a torn last line after a crash). */
export function readLedger(path: string): LedgerEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  const out: LedgerEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      const e = JSON.parse(line) as LedgerEntry;
      if (typeof e.id === "string" && typeof e.endedAt === "string" && typeof e.cpuSeconds === "number") out.push(e);
    } catch {
      // A line cut short by a crash.
    }
  }
  return out;
}
