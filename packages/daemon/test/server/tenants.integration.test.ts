import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResourceLimitError, Sandbox } from "@sbx/client";
import { execFileSync } from "node:child_process";
import { CLI, startDaemon } from "../helpers/daemon.js";
import { useDaemon } from "../helpers/fixtures.js";
import { runBash, waitFor } from "../helpers/bash.js";

/**
 * Tenants with names and quotas (issue 16 item 11): each token is a named tenant; live
 * sandboxes, their memory, and CPU- and GB-seconds over a period are refused past its quota,
 * and every ended sandbox lands in the usage ledger under its tenant's name.
 */

const GRADING = "grading-tenant-token-0123456789";
const CI = "ci-tenant-token-from-a-file-0123";
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "sbx-tenants-"));
  writeFileSync(join(dir, "ci.token"), `${CI}\n`);
});
// registered before the daemon's hooks, so it runs after the daemon stopped
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const daemon = useDaemon(() => ({
  config: {
    tenants: [
      { name: "grading", token: GRADING, quotas: { sandboxes: 2, memory: "700MiB", cpuSeconds: 1, period: "1h" } },
      { name: "ci", tokenFile: join(dir, "ci.token") },
    ],
  },
  args: ["--warm-pool", "0"],
}));
const as = (token: string) => ({ url: daemon.url, token });

describe("tenants", () => {
  it("live sandboxes and their memory are refused past the tenant's quota, naming it", async () => {
    const a = await Sandbox.create({ ...as(GRADING), memory: "400MiB" });
    const tooMuch = await Sandbox.create({ ...as(GRADING), memory: "400MiB" }).catch((e: unknown) => e);
    expect(tooMuch).toBeInstanceOf(ResourceLimitError);
    expect((tooMuch as Error).message).toBe("tenant grading: its sandboxes' memory would add up to 800 MiB, over its quota of 700 MiB (quotas.memory)");
    const b = await Sandbox.create({ ...as(GRADING), memory: "256MiB" });
    const third = await Sandbox.create({ ...as(GRADING), memory: "128MiB" }).catch((e: unknown) => e);
    expect((third as Error).message).toBe("tenant grading: 2 live sandboxes, its quota (quotas.sandboxes: 2)");
    // Another tenant (its token read from a file) is not held to grading's quota.
    const other = await Sandbox.create(as(CI));
    await Promise.all([a.kill(), b.kill(), other.kill()]);
  });

  it("CPU-seconds over the period count ended and running sandboxes; the ledger keeps every ended one under its tenant", async () => {
    const busy = await Sandbox.create({ ...as(GRADING), memory: "256MiB" });
    // One CPU-second of work, however busy the machine is.
    await runBash(busy, "python3 -c 'import time\nwhile time.process_time() < 1.2: pass'");
    const refused = await Sandbox.create({ ...as(GRADING), memory: "256MiB" }).catch((e: unknown) => e);
    expect((refused as Error).message).toMatch(/^tenant grading: used \d+\.\d CPU-seconds in the last 1h, its quota is 1 \(quotas\.cpuSeconds\)$/);
    await busy.kill();
    // Killed, it still counts: right away (stopping, not yet in the ledger) and once it has ended.
    await expect(Sandbox.create({ ...as(GRADING), memory: "256MiB" })).rejects.toThrow(/CPU-seconds in the last 1h/);
    const path = join(daemon.stateDir, "usage", "ledger.jsonl");
    const readLedger = (): Array<Record<string, unknown> & { id: string; tenant: string; cpuSeconds: number }> =>
      existsSync(path) ? readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l)) : [];
    const mine = await waitFor("the killed sandbox's ledger entry", () => readLedger().find((e) => e.id === busy.id));
    await expect(Sandbox.create({ ...as(GRADING), memory: "256MiB" })).rejects.toThrow(/CPU-seconds in the last 1h/);
    expect(mine).toMatchObject({ tenant: "grading", id: busy.id });
    expect(mine.cpuSeconds).toBeGreaterThan(1);
    expect(new Set(readLedger().map((e) => e.tenant))).toEqual(new Set(["grading", "ci"]));
  });

  it("sbx usage --tenant exports the ledger (and running sandboxes' totals) as CSV, JSON or a table, and reads it with the daemon stopped", async () => {
    const usage = (...args: string[]) => execFileSync(process.execPath, [CLI, "usage", "--state-dir", daemon.stateDir, ...args], { encoding: "utf8" });
    const running = await Sandbox.create(as(CI));
    // Running totals are saved every 5 s.
    await new Promise((r) => setTimeout(r, 5500));
    const csv = usage("--tenant", "grading", "--format", "csv").split("\r\n").filter(Boolean);
    expect(csv[0]).toBe("tenant,id,status,createdAt,endedAt,cpuSeconds,memoryGbSeconds,memoryPeakBytes,diskBytes,wallSeconds,egressRequests,egressBlocked,egressBytesOut,egressBytesIn,approximate");
    expect(csv.length).toBeGreaterThanOrEqual(4); // a, b and busy (and the refused ones never started)
    expect(csv.slice(1).every((l) => l.startsWith("grading,sbx_") && l.includes(",ended,"))).toBe(true);
    const json = JSON.parse(usage("--all", "--format", "json"));
    expect(json.tenants.map((t: { tenant: string }) => t.tenant).sort()).toEqual(["ci", "grading"]);
    const ci = json.tenants.find((t: { tenant: string }) => t.tenant === "ci");
    expect(ci.running).toBe(1);
    expect(json.sandboxes.find((r: { id: string }) => r.id === running.id)).toMatchObject({ tenant: "ci", status: "running", endedAt: "" });
    const grading = json.tenants.find((t: { tenant: string }) => t.tenant === "grading");
    expect(grading.cpuSeconds).toBeGreaterThan(1);
    expect(JSON.stringify(json)).not.toContain("owner");
    // A window that ended before any of them: nothing, but the header.
    expect(usage("--tenant", "grading", "--until", "2020-01-01", "--format", "csv").trim()).toBe(csv[0]);
    expect(usage("--tenant", "grading", "--since", "1h")).toMatch(/^usage from \S+ until \S+ .*\ntenant +sandboxes +running +CPU s/);
    expect(() => usage("--tenant", "grading", "--since", "yesterday")).toThrow(/--since expects a date such as 2026-12-01/);
    await running.kill();
    await daemon.stop();
    // The ledger is a file: the export needs no daemon.
    expect(usage("--tenant", "grading", "--format", "csv").split("\r\n").filter(Boolean).length).toBe(csv.length);
  }, 30_000);

  it("a tenant entry that names no token, or a reserved name, is refused at start", async () => {
    await expect(startDaemon({ config: { tenants: [{ name: "x" }] } })).rejects.toThrow("config.tenants[0]: give exactly one of token and tokenFile");
    await expect(startDaemon({ config: { tenants: [{ name: "default", token: "0123456789abcdef0123" }] } })).rejects.toThrow("config.tenants[0].name: must be 1-63 letters");
    await expect(startDaemon({ config: { tenants: [{ name: "t", token: "0123456789abcdef0123", quotas: { cpu: 1 } }] } })).rejects.toThrow("config.tenants[0].quotas: unknown key 'cpu'");
  });
});
