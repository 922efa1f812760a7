import { readFileSync, renameSync, writeFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../util/log.js";
import type { Usage } from "./usage.js";

/** The final usage of an ended sandbox, and who may read it. */
export interface UsageRecord {
  owner: string;
  usage: Usage;
  /** When it ended (ms since the epoch). */
  at: number;
}

/** A running sandbox's totals so far, as saved every few seconds. */
export interface RunningRecord {
  owner: string;
  tenant: string;
  createdAt: string;
  usage: Usage;
}

const RUNNING = "running.json";

/**
 * Usage that outlives the daemon: a file per ended sandbox under `<state>/usage` (kept for
 * `ttlMs`), and every running sandbox's totals in one file rewritten every few seconds. A
 * daemon killed with SIGKILL takes its sandboxes with it; the next one turns the last totals
 * it finds into final records, so `usageOf(id)` still answers (at most one interval short).
 */
export class UsageStore {
  constructor(
    private readonly dir: string,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {}

  /**
   * Loads the records still within their time, first finishing those a dead daemon left running
   * (returned as `leftovers` too, for the ledger).
   */
  async init(now = Date.now()): Promise<{ records: Map<string, UsageRecord>; leftovers: Map<string, RunningRecord & { at: number }> }> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const records = new Map<string, UsageRecord>();
    const leftovers = this.readRunning();
    for (const [id, record] of leftovers) this.writeFinal(id, { owner: record.owner, usage: record.usage, at: record.at });
    if (leftovers.size > 0) this.log.info(`kept the last usage of ${leftovers.size} sandboxes that ended with the previous daemon`);
    await fsp.rm(join(this.dir, RUNNING), { force: true });
    for (const name of await fsp.readdir(this.dir)) {
      const m = /^(sbx_[A-Za-z0-9]+)\.json$/.exec(name);
      if (!m) continue;
      const record = readRecord(join(this.dir, name));
      if (!record || now - record.at > this.ttlMs) await fsp.rm(join(this.dir, name), { force: true });
      else records.set(m[1]!, record);
    }
    return { records, leftovers };
  }

  /** An ended sandbox's final figures (written at once: the daemon may die the next moment). */
  writeFinal(id: string, record: UsageRecord): void {
    try {
      atomicWrite(join(this.dir, `${id}.json`), JSON.stringify(record));
    } catch (err) {
      this.log.warn(`could not keep the usage of ${id}: ${(err as Error).message}`);
    }
  }

  /** The running sandboxes' totals so far, replacing the previous snapshot. */
  writeRunning(running: ReadonlyMap<string, RunningRecord>, now = Date.now()): void {
    try {
      atomicWrite(join(this.dir, RUNNING), JSON.stringify(Object.fromEntries([...running].map(([id, r]) => [id, { ...r, at: now }]))));
    } catch (err) {
      this.log.warn(`could not save running usage totals: ${(err as Error).message}`);
    }
  }

  /** Removes the records of sandboxes that ended longer than the time ago. */
  async prune(ids: Iterable<string>): Promise<void> {
    for (const id of ids) await fsp.rm(join(this.dir, `${id}.json`), { force: true });
  }

  private readRunning(): Map<string, RunningRecord & { at: number }> {
    return readRunningUsage(this.dir);
  }
}

/** The running sandboxes' totals as a daemon last saved them in `dir` (at most a few seconds old while it runs). */
export function readRunningUsage(dir: string): Map<string, RunningRecord & { at: number }> {
  try {
    const data = JSON.parse(readFileSync(join(dir, RUNNING), "utf8")) as Record<string, RunningRecord & { at: number }>;
    return new Map(Object.entries(data).filter(([id, r]) => /^sbx_[A-Za-z0-9]+$/.test(id) && isRecord(r)));
  } catch {
    return new Map();
  }
}

function readRecord(path: string): UsageRecord | null {
  try {
    const r = JSON.parse(readFileSync(path, "utf8"));
    return isRecord(r) ? r : null;
  } catch {
    return null;
  }
}

function isRecord(r: unknown): r is UsageRecord {
  const x = r as UsageRecord;
  return !!x && typeof x.owner === "string" && typeof x.at === "number" && !!x.usage && typeof x.usage.cpuSeconds === "number";
}

function atomicWrite(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}
