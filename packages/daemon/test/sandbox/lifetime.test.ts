import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Lifetime, timeoutOf } from "../../src/sandbox/lifetime.js";
import type { Client } from "../../src/sandbox/sandbox.js";

const client = (id: number): Client => ({ id, owner: "o", closed: false, notify() {} });

describe("Lifetime", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("ends a session sandbox a grace period after its connection leaves", () => {
    const end = vi.fn();
    const life = new Lifetime(1000, end);
    const a = client(1);
    life.bindTo(a);
    life.left(client(2)); // not the session's connection
    vi.advanceTimersByTime(5000);
    expect(end).not.toHaveBeenCalled();
    life.left(a);
    vi.advanceTimersByTime(999);
    expect(end).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(end).toHaveBeenCalledWith("session");
  });

  it("is adopted by a connection that joins in the grace period", () => {
    const end = vi.fn();
    const life = new Lifetime(1000, end);
    const a = client(1);
    const b = client(2);
    life.bindTo(a);
    life.left(a);
    life.joined(b);
    vi.advanceTimersByTime(5000);
    expect(end).not.toHaveBeenCalled();
    life.left(b);
    vi.advanceTimersByTime(1000);
    expect(end).toHaveBeenCalledOnce();
  });

  it("extends to now + the duration (as Deno's), for a session sandbox too, and caps at 168h", () => {
    const end = vi.fn();
    const life = new Lifetime(1000, end);
    life.bindTo(client(1));
    const first = life.extend("10s");
    expect(first.getTime()).toBe(Date.now() + 10_000);
    vi.advanceTimersByTime(2000);
    // From now, not from the current expiry: a shorter duration brings the end closer.
    expect(life.extend("5s").getTime()).toBe(Date.now() + 5000);
    expect(life.extend("15s").getTime()).toBe(Date.now() + 15_000);
    life.left(client(1)); // no longer a session: leaving changes nothing
    vi.advanceTimersByTime(14_999);
    expect(end).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(end).toHaveBeenCalledWith("timeout");
    expect(() => life.extend("169h")).toThrow(/168h/);
  });

  it("stop clears the timer", () => {
    const end = vi.fn();
    const life = new Lifetime(1000, end);
    life.endAt(Date.now() + 100);
    life.stop();
    vi.advanceTimersByTime(1000);
    expect(end).not.toHaveBeenCalled();
  });

  it("checks create's timeout", () => {
    expect(timeoutOf(undefined)).toBeNull();
    expect(timeoutOf("session")).toBeNull();
    expect(timeoutOf("90s")).toBe(90_000);
    expect(() => timeoutOf("500ms")).toThrow(/between 1s and 168h/);
    expect(() => timeoutOf("169h")).toThrow(/between 1s and 168h/);
  });
});
