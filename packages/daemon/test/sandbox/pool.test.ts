import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { REFILL_DELAY_MS, WarmPool } from "../../src/sandbox/pool.js";
import type { Sandbox, SandboxLimits } from "../../src/sandbox/sandbox.js";
import { createLogger } from "../../src/util/log.js";
import { StreamBudget } from "../../src/streams/budget.js";

const LIMITS = { memoryBytes: 1 << 30, diskBytes: 1 << 30, cpus: 1 } as unknown as SandboxLimits;

/** What the pool touches of a sandbox: its limits, and the link its warm-up spawn goes through (a `true` that has exited at once). */
function fakeSandbox(): Sandbox {
  let sid = 0;
  return {
    limits: LIMITS,
    stopped: false,
    link: { allocStream: () => ++sid, addRelay() {}, endpoint: () => ({}), removeRelay() {}, call: async () => ({ pid: 7 }), streams: new StreamBudget() },
    processes: { takeUntracked: () => true },
  } as unknown as Sandbox;
}

describe("WarmPool refill timing", () => {
  let pool: WarmPool;
  let launch: ReturnType<typeof vi.fn<(l: SandboxLimits) => Promise<Sandbox>>>;
  const make = (base: number) => {
    launch = vi.fn(async () => fakeSandbox());
    pool = new WarmPool({ base, max: 8, parallel: 2, defaults: LIMITS, kindOf: () => "default", launch, discard() {}, log: createLogger(() => {}, true) });
  };

  beforeEach(() => vi.useFakeTimers());
  afterEach(async () => {
    await pool.close();
    vi.useRealTimers();
  });

  it("starts the refill behind a create served from the pool REFILL_DELAY_MS later, not between the reply and the owner's first calls", async () => {
    make(1);
    await pool.fill();
    expect([pool.size, launch.mock.calls.length]).toEqual([1, 1]);
    expect(pool.take(LIMITS)).not.toBeNull();
    await vi.advanceTimersByTimeAsync(REFILL_DELAY_MS - 1);
    expect(launch).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(launch).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(0);
    expect(pool.size).toBe(1);
  });

  it("a stream of creates does not push the refill back: it starts REFILL_DELAY_MS after the first", async () => {
    make(3);
    await pool.fill();
    expect(pool.size).toBe(3);
    pool.take(LIMITS);
    await vi.advanceTimersByTimeAsync(REFILL_DELAY_MS - 5);
    pool.take(LIMITS);
    expect(launch).toHaveBeenCalledTimes(3);
    await vi.advanceTimersByTimeAsync(5);
    // both taken sandboxes are replaced (two launches at once: parallel 2)
    expect(launch).toHaveBeenCalledTimes(5);
  });

  it("a create the pool could not serve refills at once (the caller launches cold anyway)", async () => {
    make(1);
    expect(pool.take(LIMITS)).toBeNull();
    await vi.advanceTimersByTimeAsync(1);
    expect(launch).toHaveBeenCalledTimes(1);
  });

  it("close cancels a refill still waiting", async () => {
    make(1);
    await pool.fill();
    pool.take(LIMITS);
    await pool.close();
    await vi.advanceTimersByTimeAsync(REFILL_DELAY_MS * 2);
    expect(launch).toHaveBeenCalledTimes(1);
  });
});
