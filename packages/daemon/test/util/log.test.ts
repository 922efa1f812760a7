import { describe, expect, it } from "vitest";
import { LogBudget } from "../../src/util/log.js";

describe("LogBudget", () => {
  it("lets `limit` lines through per window, holds back the rest, and reports them with the next line let through", () => {
    let now = 0;
    const budget = new LogBudget(3, 1000, () => now);
    expect([1, 2, 3].map(() => budget.take())).toEqual(Array(3).fill({ allowed: true, suppressed: 0 }));
    expect(budget.take()).toEqual({ allowed: false, suppressed: 0 });
    expect(budget.take()).toEqual({ allowed: false, suppressed: 0 });
    now = 999;
    expect(budget.take()).toEqual({ allowed: false, suppressed: 0 });
    now = 1000;
    expect(budget.take()).toEqual({ allowed: true, suppressed: 3 });
    expect(budget.take()).toEqual({ allowed: true, suppressed: 0 });
  });

  it("a flood of ten thousand attempts writes at most `limit` lines a window", () => {
    let now = 0;
    const budget = new LogBudget(100, 60_000, () => now);
    let written = 0;
    for (let i = 0; i < 10_000; i++) {
      now += 1; // ten seconds in all: one window
      if (budget.take().allowed) written++;
    }
    expect(written).toBe(100);
  });
});
