import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

/**
 * The storage stock sizes itself to demand, as the warm pool does: a burst of creates that found
 * it empty raises its target to the burst's size (up to `max`), and the target falls back by one
 * a minute without such a miss. The file systems are faked here (each is mkfs and a loop mount
 * for real; warm.integration.test.ts covers those); the timers are vitest's.
 */
const made: string[] = [];
const destroyed: string[] = [];
vi.mock("../../src/sandbox/storage.js", () => ({
  PreparedStorage: {
    prepare: async (root: string, bytes: number) => {
      made.push(root);
      return { root, bytes, image: `${root}.img`, claim: async () => ({}), destroy: async () => void destroyed.push(root) };
    },
  },
  SandboxStorage: { create: async () => ({}) },
}));
const { StorageStock } = await import("../../src/sandbox/storage-stock.js");

const GiB = 2 ** 30;
let n = 0;
const stock = (size: number, max: number, mayPrepare = () => true) =>
  new StorageStock({ dir: "/mnt", size, max, bytes: 10 * GiB, reserve: false, mayPrepare, newId: () => `sbx_${++n}`, log: { info() {}, warn() {}, error() {} } });
/** Lets the refill's awaits run after a timer fired. */
const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

describe("the storage stock under bursts", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    made.length = destroyed.length = 0;
  });
  afterEach(() => vi.useRealTimers());

  it("grows to a burst that found it empty, within max, and shrinks back by one a minute", async () => {
    const s = stock(1, 4);
    await s.fill();
    expect(s.count).toBe(1);
    // Six creates at once: the first takes the prepared one, five miss.
    const takes = Array.from({ length: 6 }, () => s.take(10 * GiB));
    expect(takes.filter((t) => t.id.startsWith("sbx_")).length).toBe(6);
    expect(s.wanted).toBe(4);
    await vi.advanceTimersByTimeAsync(60);
    await settle();
    expect(s.count).toBe(4);
    // A minute and a bit without a miss: one step down, one file system removed.
    await vi.advanceTimersByTimeAsync(75_000);
    await settle();
    expect([s.wanted, s.count, destroyed.length]).toEqual([3, 3, 1]);
    // Down to the configured size, never below it.
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    await settle();
    expect([s.wanted, s.count]).toEqual([1, 1]);
    await s.close();
  });

  it("counts neither hits alone nor other disk sizes as demand, and stays within the disk budget", async () => {
    const s = stock(2, 8);
    await s.fill();
    s.take(10 * GiB);
    await vi.advanceTimersByTimeAsync(60);
    await settle();
    expect([s.wanted, s.count]).toEqual([2, 2]);
    for (let i = 0; i < 5; i++) s.take(1 * GiB);
    expect(s.wanted).toBe(2);
    // A burst that misses, on a disk that can promise one more image only.
    let room = 1;
    const tight = stock(1, 8, () => room-- > 0);
    await tight.fill();
    for (let i = 0; i < 5; i++) tight.take(10 * GiB);
    await vi.advanceTimersByTimeAsync(60);
    await settle();
    expect(tight.wanted).toBe(5);
    expect(tight.count).toBe(0);
    await s.close();
    await tight.close();
  });
});
