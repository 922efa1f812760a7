import { afterEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { SPARE_MS, createMade, takeSpare } from "../src/spare.js";

/** What spare.ts touches of a WebSocket: its state, close, listeners and socket. */
function fakeSocket() {
  const socket = { ref: vi.fn(), unref: vi.fn() };
  return { readyState: WebSocket.OPEN, close: vi.fn(), terminate: vi.fn(), on: vi.fn(), off: vi.fn(), _socket: socket } as unknown as WebSocket & { close: ReturnType<typeof vi.fn>; _socket: typeof socket };
}

afterEach(() => void vi.useRealTimers());

describe("spare connections", () => {
  it("open 50 ms after a second create, unref'd until taken, then ref'd", async () => {
    vi.useFakeTimers();
    const ws = fakeSocket();
    const open = vi.fn(async () => ws);
    createMade("a", open);
    createMade("a", open);
    expect(open).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(50);
    expect(open).toHaveBeenCalledTimes(1);
    expect(ws._socket.unref).toHaveBeenCalled();
    expect(await takeSpare("a")).toBe(ws);
    expect(ws._socket.ref).toHaveBeenCalled();
    expect(await takeSpare("a")).toBeNull(); // one per place, taken once
  });

  it("an unused one is closed SPARE_MS after it opened, and not handed out", async () => {
    vi.useFakeTimers();
    const ws = fakeSocket();
    createMade("b", async () => ws);
    createMade("b", async () => ws);
    await vi.advanceTimersByTimeAsync(50 + SPARE_MS - 1);
    expect(ws.close).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(ws.close).toHaveBeenCalledWith(1000, "unused");
    expect(await takeSpare("b")).toBeNull();
  });

  it("none after creates further apart than SPARE_MS, none for another place, and a failed open is none", async () => {
    vi.useFakeTimers();
    const open = vi.fn(async () => fakeSocket());
    createMade("c", open);
    await vi.advanceTimersByTimeAsync(SPARE_MS);
    createMade("c", open);
    await vi.advanceTimersByTimeAsync(100);
    expect(open).not.toHaveBeenCalled();
    expect(await takeSpare("d")).toBeNull();
    createMade("e", open);
    createMade("e", () => Promise.reject(new Error("refused")));
    await vi.advanceTimersByTimeAsync(50);
    expect(await takeSpare("e")).toBeNull();
  });
});
