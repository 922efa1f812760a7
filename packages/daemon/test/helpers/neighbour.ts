import { readdirSync, readFileSync } from "node:fs";
import type { Sandbox } from "@sbx/client";

/** Time from `spawn("true")` to its exit status, in ms. */
export async function roundTrip(sb: Sandbox): Promise<number> {
  const t = performance.now();
  const p = await sb.spawn("true", { stdout: "null", stderr: "null" });
  const status = await p.status;
  if (status.code !== 0) throw new Error(`true exited with ${JSON.stringify(status)}`);
  return performance.now() - t;
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const rssBytes = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
export const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** What a well-behaved neighbour saw while an attack ran. */
export interface NeighbourReport {
  idleMs: number;
  duringMs: number;
  worstMs: number;
  samples: number;
  rssGrowth: number;
  line: string;
}

/**
 * A neighbour's `true` round trip while `attack` runs (median and worst), beside its idle
 * median measured first, and the daemon's RSS growth over the attack. Samples for at least
 * `minMs`, and until the attack settles.
 */
export async function duringAttack(neighbour: Sandbox, daemonPid: number, attack: () => Promise<unknown>, minMs = 2000): Promise<NeighbourReport> {
  const idle: number[] = [];
  for (let i = 0; i < 15; i++) idle.push(await roundTrip(neighbour));
  const rssBefore = rssBytes(daemonPid);
  let rssPeak = rssBefore;
  let settled = false;
  const started = Date.now();
  const running = attack().finally(() => (settled = true));
  running.catch(() => {});
  const during: number[] = [];
  while (!settled || Date.now() - started < minMs) {
    during.push(await roundTrip(neighbour));
    rssPeak = Math.max(rssPeak, rssBytes(daemonPid));
    if (Date.now() - started > 120_000) break;
  }
  await running;
  const report = { idleMs: median(idle), duringMs: median(during), worstMs: Math.max(...during), samples: during.length, rssGrowth: rssPeak - rssBefore, line: "" };
  report.line = `neighbour true: idle ${report.idleMs.toFixed(1)} ms, during ${report.duringMs.toFixed(1)} ms (worst ${report.worstMs.toFixed(0)} ms, ${during.length} samples); daemon RSS +${(report.rssGrowth / 2 ** 20).toFixed(1)} MiB`;
  return report;
}

/**
 * The bounds the resilience tests hold the daemon to while an attack runs. Timings on a shared
 * 2-core machine are noisy, so the bound is loose enough for noise and far below a freeze (the
 * attacks this guards against cost neighbours seconds to minutes); bench/ reports the ratios.
 */
export function expectUnharmed(report: NeighbourReport, expect: (v: unknown, m?: string) => any): void {
  expect(report.duringMs, report.line).toBeLessThan(Math.max(4 * report.idleMs, report.idleMs + 100));
  expect(report.worstMs, report.line).toBeLessThan(2000);
  expect(report.rssGrowth, report.line).toBeLessThan(200 * 2 ** 20);
}
