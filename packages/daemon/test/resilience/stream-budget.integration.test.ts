/**
 * Issue 11 item 5: a sandbox's output the daemon holds unread is bounded per sandbox
 * (streamBytesPerSandbox), whatever the number of streams and the window: processes whose output
 * nobody reads wait, the daemon's memory does not grow past the budget, a stream past it is
 * refused with an error naming the key, and every byte arrives once the streams are read.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { STREAM_WINDOW } from "@sbx/protocol";
import { useDaemon } from "../helpers/fixtures.js";
import { rssBytes } from "../helpers/neighbour.js";

const MiB = 1 << 20;
/** Small, so that what the test measures is the budget: 32 streams at their initial 256 KiB window. */
const BUDGET = 8 * MiB;
/** Each process writes this much, more than a window: nobody reading, it must wait. */
const EACH = Math.max(16 * MiB, 2 * STREAM_WINDOW);
const daemon = useDaemon({ config: { streamBytesPerSandbox: "8MiB" }, args: ["--warm-pool", "0"] });

let sb: Sandbox;
beforeAll(async () => {
  sb = await Sandbox.create({ ...daemon.opts, timeout: "10m" });
});
afterAll(async () => {
  await sb?.kill().catch(() => {});
});

/** Reads `stream` to its end (or, with `upTo`, that many bytes), checking every byte is zero; returns how many came. */
async function drain(stream: ReadableStream<Uint8Array>, upTo = Infinity): Promise<number> {
  const reader = stream.getReader();
  let n = 0;
  while (n < upTo) {
    const { value, done } = await reader.read();
    if (done) break;
    if (value.some((b) => b !== 0)) throw new Error("a byte that is not the process's");
    n += value.byteLength;
  }
  reader.releaseLock();
  return n;
}

describe("a sandbox's stream budget (streamBytesPerSandbox)", () => {
  it("32 processes nobody reads cannot make the daemon hold more than the budget; a 33rd stream is refused; all output is complete once read", async () => {
    // Settled first: the daemon's memory with one sandbox and nothing flowing.
    await sb.sh`true`;
    await new Promise((r) => setTimeout(r, 500));
    const before = rssBytes(daemon.proc.pid!);
    let peak = before;
    const sample = setInterval(() => (peak = Math.max(peak, rssBytes(daemon.proc.pid!))), 20);
    try {
      // Each writes once its client has gone: nobody reads any of it.
      const client = await Sandbox.connect(sb.id, daemon.opts);
      const pids: number[] = [];
      for (let i = 0; i < 32; i++) pids.push((await client.spawn("bash", { args: ["-c", `sleep 1; head -c ${EACH} /dev/zero`], stderr: "null" })).pid);
      // Each open stream holds its initial window of the budget: a 33rd does not fit.
      await expect(client.spawn("true", { stderr: "null" })).rejects.toThrow(/8388608 bytes of unread output .*streamBytesPerSandbox/);
      await client.close();
      // The processes have written what they may and wait; give them time to try for more.
      await new Promise((r) => setTimeout(r, 2500));
      const idle = rssBytes(daemon.proc.pid!);
      const listed = (await sb.processes()).filter((p) => pids.includes(p.pid));
      const held = listed.reduce((n, p) => n + (p.stdout?.end ?? 0), 0);
      console.log(`32 unread streams: daemon RSS ${(before / MiB).toFixed(1)} → ${(idle / MiB).toFixed(1)} MiB (peak ${(peak / MiB).toFixed(1)}); ${(held / MiB).toFixed(2)} MiB of output held`);
      // What the daemon took from the sandbox is within the budget (the processes wanted 32 × EACH).
      expect(listed).toHaveLength(32);
      expect(held).toBeLessThanOrEqual(BUDGET);
      expect(held).toBeGreaterThan(BUDGET / 2);
      expect(listed.every((p) => p.running)).toBe(true);
      expect(idle - before).toBeLessThan(BUDGET + 24 * MiB);

      // Read: every process's output complete from its first byte, nothing lost while nobody read.
      const got = await Promise.all(pids.map(async (pid) => drain((await sb.attach(pid, { stdoutFrom: 0, stderr: "null" })).stdout!)));
      expect(got).toEqual(pids.map(() => EACH));
      const after = (await sb.processes()).filter((p) => pids.includes(p.pid));
      expect(after.every((p) => !p.running && p.status?.code === 0)).toBe(true);
      console.log(`all read: daemon RSS peak growth ${((peak - before) / MiB).toFixed(1)} MiB`);
      // Flowing at full speed, 32 × EACH through it, the daemon grows by a fraction of that (garbage not yet collected, mostly).
      expect(peak - before).toBeLessThan((32 * EACH) / 4);
      // The budget is back: a new stream opens.
      expect((await sb.sh`echo again`.text()).trim()).toBe("again");
    } finally {
      clearInterval(sample);
    }
  });
});
