import { describe, expect, it } from "vitest";
import { ByteBudget } from "../src/budget.js";

describe("ByteBudget", () => {
  it("counts at every level, says which level is over its high mark, and wakes waiters once all are under their low marks", async () => {
    const all = new ByteBudget(80, 50);
    const a = new ByteBudget(40, 10, all);
    const b = new ByteBudget(40, 10, all);
    a.add(30);
    b.add(30);
    expect([a.queued, b.queued, all.queued]).toEqual([30, 30, 60]);
    expect(a.congested()).toBeNull();
    a.add(20); // a over its own mark
    expect(a.congested()).toBe(a);
    expect(b.congested()).toBeNull();
    b.add(5); // the whole (85) over its mark while b (35) is not: b is held by its parent
    expect(b.congested()).toBe(all);

    let woke = false;
    const waiting = b.drained().then(() => (woke = true));
    b.sub(30); // b under its low mark (5), the whole at 55: still over its low mark (50)
    await Promise.resolve();
    expect(woke).toBe(false);
    a.sub(10); // the whole at 45
    await waiting;
    expect(woke).toBe(true);
    expect(all.queued).toBe(45);
  });
});
