import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { Sandbox, SandboxNotFoundError, type Usage } from "@sbx/client";
import { CLI, removeStateDir, startDaemon } from "../helpers/daemon.js";
import { useSandbox } from "../helpers/fixtures.js";
import { runBash, waitFor } from "../helpers/bash.js";
import { RawClient } from "../helpers/raw.js";

/**
 * Usage metering (issue 3, "Metering") against REAL cgroup v1 accounting and the real root-mode
 * storage mount: the figures `sandbox.usage()` and `sbx usage` report agree with what the kernel
 * counted, and the final ones outlive the sandbox unchanged.
 */

const MIB = 1024 * 1024;
const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let createdBefore = 0;
let createdAfter = 0;
/** The last live reading, to compare the final figures with. */
let lastLive: Usage;

const run = (box: Sandbox, script: string) => runBash(box, script);

async function sbxUsage(id: string): Promise<unknown> {
  const { stdout } = await execFileP(process.execPath, [CLI, "usage", id, "--json"], {
    env: { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token },
    timeout: 30_000,
  });
  return JSON.parse(stdout);
}

const OTHER_TOKEN = "metering-other-tenant-0123456789";
const USAGE_KEYS = ["approximate", "cpuSeconds", "diskBytes", "egress", "memoryGbSeconds", "memoryPeakBytes", "status", "wallSeconds"];

// The sandbox's creation is timed from just before the call to just after it.
const { daemon, sb } = useSandbox({
  daemon: { config: { tokens: [OTHER_TOKEN] } },
  sandbox: () => {
    createdBefore = Date.now();
    return {};
  },
  setup: async () => {
    createdAfter = Date.now();
  },
});

describe("a running sandbox", () => {
  it("reports the kernel's figures, not estimates (root mode: approximate is false)", async () => {
    const u = await sb.usage();
    expect(Object.keys(u).sort()).toEqual(USAGE_KEYS);
    expect(u.status).toBe("running");
    expect(u.approximate).toBe(false);
    expect(u.egress).toEqual({ requests: 0, blocked: 0, bytesOut: 0, bytesIn: 0 });
    // A fresh sandbox has used next to nothing: its start-up is not billed to its owner.
    expect(u.cpuSeconds).toBeLessThan(0.25);
    expect(u.diskBytes).toBeLessThan(MIB);
    // The native supervisor and its kernel objects alone are charged a few hundred KiB.
    expect(u.memoryPeakBytes).toBeGreaterThan(256 * 1024);
  });

  it("a 2-second single-thread busy loop reads 2 ± 0.3 CPU seconds", async () => {
    const before = await sb.usage();
    // Spins until the process itself has used 2 s of CPU, so a busy host cannot shorten it.
    const r = await run(sb, "python3 -c 'import time\nwhile time.process_time() < 2.0: pass\nprint(round(time.process_time(), 2))'");
    const after = await sb.usage();
    expect(r.code).toBe(0);
    expect(Number(r.out)).toBeGreaterThanOrEqual(2);
    const used = after.cpuSeconds - before.cpuSeconds;
    expect(used).toBeGreaterThan(1.7);
    expect(used).toBeLessThan(2.3);
  });

  it("diskBytes reflects a 10 MiB file (± 1 MiB) and drops when it is removed", async () => {
    const before = (await sb.usage()).diskBytes;
    expect(before).toBeLessThan(MIB);
    await run(sb, "head -c 10485760 /dev/urandom > /home/user/ten");
    const after = (await sb.usage()).diskBytes;
    expect(Math.abs(after - before - 10 * MIB)).toBeLessThanOrEqual(MIB);
    // /tmp is on the same storage and counts too.
    await run(sb, "head -c 2097152 /dev/zero > /tmp/two");
    expect(Math.abs((await sb.usage()).diskBytes - before - 12 * MIB)).toBeLessThanOrEqual(MIB);
    await run(sb, "rm /tmp/two");
    expect(Math.abs((await sb.usage()).diskBytes - after)).toBeLessThanOrEqual(MIB / 4);
  });

  it("memoryGbSeconds is > 0 and grows with time, by no more than peak memory × elapsed", async () => {
    const a = await sb.usage();
    await sleep(2200);
    const b = await sb.usage();
    expect(a.memoryGbSeconds).toBeGreaterThan(0);
    expect(b.memoryGbSeconds).toBeGreaterThan(a.memoryGbSeconds);
    const elapsed = b.wallSeconds - a.wallSeconds;
    expect(elapsed).toBeGreaterThan(2.1);
    const grown = b.memoryGbSeconds - a.memoryGbSeconds;
    // At least what the supervisor holds was in use all along, never more than the peak.
    expect(grown).toBeGreaterThan((256 * 1024 * elapsed) / 1e9);
    expect(grown).toBeLessThanOrEqual((b.memoryPeakBytes * elapsed) / 1e9 + 1e-6);
    expect(b.memoryPeakBytes).toBeGreaterThanOrEqual(a.memoryPeakBytes);
  });

  it("wallSeconds tracks wall time since the sandbox was handed out", async () => {
    const t0 = Date.now();
    const u = await sb.usage();
    const t1 = Date.now();
    expect(u.wallSeconds).toBeGreaterThanOrEqual((t0 - createdAfter) / 1000 - 0.01);
    expect(u.wallSeconds).toBeLessThanOrEqual((t1 - createdBefore) / 1000 + 0.01);
    lastLive = u;
  });

  it("`sbx usage ID --json` prints the same shape for a running sandbox", async () => {
    const u = (await sbxUsage(sb.id)) as Usage;
    expect(Object.keys(u).sort()).toEqual(USAGE_KEYS);
    expect(u.status).toBe("running");
    expect(u.cpuSeconds).toBeGreaterThanOrEqual(lastLive.cpuSeconds);
    expect(u.wallSeconds).toBeGreaterThan(lastLive.wallSeconds);
    expect(Math.abs(u.diskBytes - lastLive.diskBytes)).toBeLessThanOrEqual(MIB / 4);
  });
});

describe("after kill", () => {
  it("Sandbox.usageOf and usage() on the killed handle return the final figures, which stay put", async () => {
    const id = sb.id;
    const live = await sb.usage();
    await sb.kill();
    const final = await sb.usage();
    expect(final.status).toBe("stopped");
    expect(await Sandbox.usageOf(id, daemon.opts)).toEqual(final);
    expect(final.cpuSeconds).toBeGreaterThanOrEqual(live.cpuSeconds);
    expect(final.cpuSeconds).toBeLessThan(live.cpuSeconds + 0.5);
    expect(final.wallSeconds).toBeGreaterThanOrEqual(live.wallSeconds);
    expect(final.wallSeconds).toBeLessThan(live.wallSeconds + 2);
    expect(final.memoryGbSeconds).toBeGreaterThanOrEqual(live.memoryGbSeconds);
    expect(final.memoryPeakBytes).toBeGreaterThanOrEqual(live.memoryPeakBytes);
    // The 10 MiB file was still there when the figures were frozen.
    expect(Math.abs(final.diskBytes - live.diskBytes)).toBeLessThanOrEqual(MIB / 4);
    expect(final.diskBytes).toBeGreaterThan(9 * MIB);
    expect(final.approximate).toBe(false);

    await sleep(1500);
    expect(await Sandbox.usageOf(id, daemon.opts)).toEqual(final);
    expect(await sb.usage()).toEqual(final);

    // The daemon logged exactly these figures when the sandbox ended.
    expect(daemon.logs()).toContain(
      `sandbox ${id} ended: cpu ${final.cpuSeconds}s, memory peak ${final.memoryPeakBytes} B, ${final.memoryGbSeconds} GB-s, disk ${final.diskBytes} B, wall ${final.wallSeconds}s\n`,
    );
    // And the CLI prints them too, in the same shape.
    expect(await sbxUsage(id)).toEqual(final);
    // Only to the token that owned the sandbox.
    const err = await Sandbox.usageOf(id, { url: daemon.url, token: OTHER_TOKEN }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxNotFoundError);
    expect((err as Error).message).toBe(`no running sandbox '${id}'`);
  });

  it("the final figures are readable the moment kill has returned", async () => {
    const box = await Sandbox.create({ ...daemon.opts, timeout: "5m" });
    await run(box, "head -c 1048576 /dev/zero > /home/user/one");
    await box.close();
    const raw = await RawClient.open(daemon.url, daemon.token);
    try {
      // Sent back to back: the usage request is answered right after the kill, whatever bwrap is doing.
      const [killed, usage] = await Promise.all([raw.call("sandbox.kill", { id: box.id }), raw.call("sandbox.usage", { id: box.id })]);
      expect(killed).toMatchObject({ result: null });
      expect(usage.error).toBeUndefined();
      expect(usage.result.status).toBe("stopped");
      expect(usage.result.diskBytes).toBeGreaterThanOrEqual(MIB);
    } finally {
      raw.close();
    }
  });
});

describe("usage records outlive the daemon (resilience item 12)", () => {
  it("after a SIGKILL, a restarted daemon still answers usageOf for sandboxes that ended with it and before it", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "sbx-usage-"));
    try {
      const first = await startDaemon({ stateDir, args: ["--warm-pool", "0"] });
      const ended = await Sandbox.create({ ...first.opts, timeout: "5m" });
      await ended.kill();
      const endedUsage = await Sandbox.usageOf(ended.id, first.opts);
      const busy = await Sandbox.create({ ...first.opts, timeout: "5m" });
      await run(busy, "timeout 1.5 sh -c 'while :; do :; done'; head -c 2097152 /dev/zero > /home/user/two");
      // Its running totals reach the state dir within a few seconds.
      await waitFor("the running totals to be saved", () => {
        try {
          const saved = JSON.parse(readFileSync(join(stateDir, "usage", "running.json"), "utf8"));
          return saved[busy.id]?.usage.cpuSeconds >= 0.5 && saved[busy.id].usage.diskBytes >= 2 * MIB;
        } catch {
          return false;
        }
      }, 10_000);
      await first.stop("SIGKILL");
      await using second = await startDaemon({ stateDir, config: { tokens: [OTHER_TOKEN] }, args: ["--warm-pool", "0"] });
      expect(second.logs()).toContain("kept the last usage of 1 sandboxes that ended with the previous daemon");
      const after = await Sandbox.usageOf(busy.id, second.opts);
      expect(after.status).toBe("stopped");
      expect(after.cpuSeconds).toBeGreaterThanOrEqual(0.5);
      expect(after.diskBytes).toBeGreaterThanOrEqual(2 * MIB);
      expect(await Sandbox.usageOf(ended.id, second.opts)).toEqual(endedUsage);
      // Still only for the token that owned them.
      await expect(Sandbox.usageOf(busy.id, { url: second.url, token: OTHER_TOKEN })).rejects.toBeInstanceOf(SandboxNotFoundError);
    } finally {
      await removeStateDir(stateDir);
    }
  });
});
