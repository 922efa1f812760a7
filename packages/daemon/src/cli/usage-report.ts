import { existsSync } from "node:fs";
import { join } from "node:path";
import { readLedger } from "../sandbox/ledger.js";
import { readRunningUsage } from "../sandbox/usage-store.js";
import type { Usage } from "../sandbox/usage.js";
import { parseDuration } from "../util/units.js";
import { UsageError } from "./args.js";

/** One sandbox's line in a tenant's usage: ended (from the ledger) or still running (its totals so far). */
export interface UsageRow {
  tenant: string;
  id: string;
  status: "ended" | "running";
  createdAt: string;
  /** Empty while it runs. */
  endedAt: string;
  cpuSeconds: number;
  memoryGbSeconds: number;
  memoryPeakBytes: number;
  diskBytes: number;
  wallSeconds: number;
  egressRequests: number;
  egressBlocked: number;
  egressBytesOut: number;
  egressBytesIn: number;
  approximate: boolean;
}

const SUMMED = ["cpuSeconds", "memoryGbSeconds", "wallSeconds", "egressRequests", "egressBlocked", "egressBytesOut", "egressBytesIn"] as const;
export type UsageTotals = { tenant: string; sandboxes: number; running: number } & Record<(typeof SUMMED)[number], number>;

export interface UsageReport {
  /** ISO times of the window; a sandbox counts in the window it ended in (running ones: now). */
  since: string | null;
  until: string;
  tenants: UsageTotals[];
  sandboxes: UsageRow[];
}

/** A time given on the command line: an ISO date/time, or a duration back from `now` ("24h", "30d" as "720h"). */
export function parseWhen(text: string, flag: string, now: number): number {
  const days = /^(\d+)d$/.exec(text);
  if (days) return now - Number(days[1]) * 86_400_000;
  if (/^\d+(ms|[hms])/.test(text) && !/[-:]/.test(text)) {
    try {
      return now - parseDuration(text);
    } catch {
      // Not a duration after all: said below.
    }
  }
  const t = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(t)) throw new UsageError(`${flag} expects a date such as 2026-12-01 or 2026-12-01T08:00:00Z, or a duration back from now such as 24h or 30d (got '${text}')`);
  return t;
}

function row(tenant: string, id: string, status: UsageRow["status"], createdAt: string, endedAt: string, u: Usage): UsageRow {
  return {
    tenant, id, status, createdAt, endedAt,
    cpuSeconds: u.cpuSeconds, memoryGbSeconds: u.memoryGbSeconds, memoryPeakBytes: u.memoryPeakBytes, diskBytes: u.diskBytes, wallSeconds: u.wallSeconds,
    egressRequests: u.egress.requests, egressBlocked: u.egress.blocked, egressBytesOut: u.egress.bytesOut, egressBytesIn: u.egress.bytesIn,
    approximate: u.approximate,
  };
}

/**
 * What tenants used, from a daemon's state dir (readable whether the daemon runs or not): every
 * sandbox that ended in [since, until) from the ledger, and, when the window reaches now, every
 * running one with its totals as last saved (every 5 s). `tenant` null means all tenants.
 */
export function usageReport(stateDir: string, opts: { tenant: string | null; since: number | null; until: number; now?: number }): UsageReport {
  const dir = join(stateDir, "usage");
  if (!existsSync(dir)) throw new UsageError(`no usage records in ${stateDir} (is it a daemon's state dir? give it with --state-dir or --config)`);
  const now = opts.now ?? Date.now();
  const inWindow = (t: number) => (opts.since === null || t >= opts.since) && t < opts.until;
  const wanted = (tenant: string) => opts.tenant === null || tenant === opts.tenant;
  const rows: UsageRow[] = [];
  for (const e of readLedger(join(dir, "ledger.jsonl"))) {
    if (wanted(e.tenant) && inWindow(Date.parse(e.endedAt))) rows.push(row(e.tenant, e.id, "ended", e.createdAt, e.endedAt, e));
  }
  if (opts.until >= now) {
    for (const [id, r] of readRunningUsage(dir)) if (wanted(r.tenant)) rows.push(row(r.tenant, id, "running", r.createdAt, "", r.usage));
  }
  rows.sort((a, b) => a.tenant.localeCompare(b.tenant) || (a.endedAt || "~").localeCompare(b.endedAt || "~") || a.id.localeCompare(b.id));
  const totals = new Map<string, UsageTotals>();
  for (const r of rows) {
    const t = totals.get(r.tenant) ?? { tenant: r.tenant, sandboxes: 0, running: 0, ...Object.fromEntries(SUMMED.map((k) => [k, 0])) } as UsageTotals;
    t.sandboxes++;
    if (r.status === "running") t.running++;
    for (const k of SUMMED) t[k] += r[k];
    totals.set(r.tenant, t);
  }
  return { since: opts.since === null ? null : new Date(opts.since).toISOString(), until: new Date(opts.until).toISOString(), tenants: [...totals.values()], sandboxes: rows };
}

const COLUMNS: (keyof UsageRow)[] = ["tenant", "id", "status", "createdAt", "endedAt", "cpuSeconds", "memoryGbSeconds", "memoryPeakBytes", "diskBytes", "wallSeconds", "egressRequests", "egressBlocked", "egressBytesOut", "egressBytesIn", "approximate"];

/** RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled. */
const csvField = (v: unknown) => (/[",\r\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));

export function formatCsv(report: UsageReport): string {
  return [COLUMNS.join(","), ...report.sandboxes.map((r) => COLUMNS.map((c) => csvField(r[c])).join(","))].map((l) => `${l}\r\n`).join("");
}

export function formatTable(report: UsageReport): string {
  const head = `usage ${report.since ? `from ${report.since} ` : ""}until ${report.until} (a sandbox counts when it ended; running ones with their totals so far)\n`;
  if (report.tenants.length === 0) return `${head}no sandboxes\n`;
  const lines = [["tenant", "sandboxes", "running", "CPU s", "GB-s", "wall s", "egress req", "blocked", "bytes out", "bytes in"]];
  for (const t of report.tenants) {
    lines.push([t.tenant, String(t.sandboxes), String(t.running), t.cpuSeconds.toFixed(1), t.memoryGbSeconds.toFixed(1), t.wallSeconds.toFixed(0), String(t.egressRequests), String(t.egressBlocked), String(t.egressBytesOut), String(t.egressBytesIn)]);
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return head + lines.map((l) => l.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")).join("\n") + "\n";
}
