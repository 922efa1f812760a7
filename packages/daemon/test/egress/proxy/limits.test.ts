import { describe, expect, it } from "vitest";
import { Budget, decodeSlot, DEFAULT_BOUNDS, EgressShared, Slots } from "../../../src/egress/proxy/limits.js";

describe("Budget", () => {
  it("takes only when it and its parent have room, and gives back to both", () => {
    const daemon = new Budget(10);
    const a = new Budget(6, daemon);
    const b = new Budget(6, daemon);
    expect(a.take(6)).toBe(true);
    expect(a.take(1)).toBe(false); // its own limit
    expect(b.take(5)).toBe(false); // the daemon's: 6 + 5 > 10
    expect([a.inUse, b.inUse, daemon.inUse]).toEqual([6, 0, 6]);
    expect(b.take(4)).toBe(true);
    a.give(6);
    expect([a.inUse, daemon.inUse]).toEqual([0, 4]);
    a.give(100); // more than was taken gives back nothing extra
    expect(daemon.inUse).toBe(4);
  });
});

describe("Slots", () => {
  it("lets `size` holders in and the rest in order as slots free", async () => {
    const slots = new Slots(2);
    const order: number[] = [];
    const frees = await Promise.all([slots.acquire(), slots.acquire()]);
    const waiting = [3, 4].map((n) => slots.acquire().then((free) => (order.push(n), free)));
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual([]);
    frees[0]!();
    frees[0]!(); // freeing twice frees once
    const third = await waiting[0]!;
    expect(order).toEqual([3]);
    frees[1]!();
    (await waiting[1]!)();
    third();
    expect(order).toEqual([3, 4]);
  });

  it("a sandbox that queues many decodes holds one place in the daemon's queue, so another sandbox's turn comes next", async () => {
    const shared = new EgressShared(DEFAULT_BOUNDS, () => []);
    const [hog, third, other] = [shared.forSandbox(), shared.forSandbox(), shared.forSandbox()];
    const order: string[] = [];
    const take = (who: string, b: typeof hog) => decodeSlot(b).then((free) => (order.push(who), free));
    // The daemon's two slots are busy: one hog decode, one of a third sandbox.
    const hogFirst = await take("hog", hog);
    const thirdFree = await take("third", third);
    const hogQueued = [take("hog", hog), take("hog", hog), take("hog", hog)];
    const theirs = take("other", other);
    thirdFree();
    (await theirs)();
    expect(order).toEqual(["hog", "third", "other"]);
    hogFirst();
    for (const q of hogQueued) (await q)();
    expect(order).toEqual(["hog", "third", "other", "hog", "hog", "hog"]);
  });
});
