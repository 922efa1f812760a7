/**
 * A sandbox's stream budget (streams/budget.ts) played against the real SupervisorLink and output
 * taps, with a supervisor that sends every byte its credit allows on every stream at once: what
 * the daemon holds for the sandbox never exceeds the budget, whoever reads or does not, and what
 * was held arrives complete once read.
 */
import { EventEmitter } from "node:events";
import { PassThrough } from "node:stream";
import type { ChildProcess } from "node:child_process";
import { describe, expect, it } from "vitest";
import { STREAM_WINDOW } from "@sbx/protocol";
import { CHANNEL_INITIAL_WINDOW, ChannelOp, FrameReader, encodeChannelFrame } from "../../src/channel/framing.js";
import { SupervisorLink } from "../../src/sandbox/supervisor-link.js";
import { OutputTap } from "../../src/streams/output-tap.js";
import { ProcessOutputs } from "../../src/sandbox/outputs.js";
import { StreamBudget } from "../../src/streams/budget.js";
import type { Endpoint } from "../../src/streams/relay.js";

const MiB = 1 << 20;
const settle = async () => {
  for (let i = 0; i < 4; i++) await new Promise((r) => setImmediate(r));
};

/**
 * A supervisor that writes `size` bytes on each stream it is given, as fast as credit allows:
 * the initial window at once, then whatever each CREDIT frame from the daemon grants.
 */
function greedySupervisor(budgetBytes: number) {
  const proc = Object.assign(new EventEmitter(), { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() });
  const link = new SupervisorLink(proc as unknown as ChildProcess, { info() {}, warn() {}, error() {} }, "sbx_test", undefined, budgetBytes);
  const fatal: string[] = [];
  link.onFatal = (reason) => fatal.push(reason);
  const streams = new Map<number, { credit: number; left: number; seq: number; credits: number }>();
  const pump = (sid: number) => {
    const s = streams.get(sid)!;
    while (s.credit > 0 && s.left > 0) {
      const n = Math.min(s.credit, s.left, 64 * 1024);
      // Each byte says where it is in its stream, so a lost or repeated byte shows.
      const chunk = Buffer.alloc(n);
      for (let i = 0; i < n; i++) chunk[i] = (s.seq + i) & 0xff;
      s.seq += n;
      proc.stdout.write(encodeChannelFrame(ChannelOp.Data, sid, chunk));
      s.credit -= n;
      s.left -= n;
      if (s.left === 0) proc.stdout.write(encodeChannelFrame(ChannelOp.End, sid));
    }
  };
  const reader = new FrameReader(16 * MiB);
  proc.stdin.on("data", (d: Buffer) => {
    for (const f of reader.push(d)) {
      const s = streams.get(f.id);
      if (f.op !== ChannelOp.Credit || !s) continue;
      s.credit += f.payload.readUInt32BE(0);
      s.credits++;
      pump(f.id);
    }
  });
  const start = (sid: number, size: number) => {
    streams.set(sid, { credit: CHANNEL_INITIAL_WINDOW, left: size, seq: 0, credits: 0 });
    pump(sid);
  };
  return { link, fatal, start, creditsOf: (sid: number) => streams.get(sid)!.credits };
}

/** A client that takes every byte sent and grants credit for it at once while `reading`. */
function reader() {
  const r = { bytes: 0, ended: false, intact: true, reading: true, stopAt: Infinity, relay: null as null | { credit(n: number): void }, owed: 0 };
  const client: Endpoint = {
    data: (c) => {
      for (let i = 0; i < c.byteLength; i++) if (c[i] !== ((r.bytes + i) & 0xff)) r.intact = false;
      r.bytes += c.byteLength;
      if (r.reading && r.bytes < r.stopAt) queueMicrotask(() => r.relay?.credit(c.byteLength));
      else r.owed += c.byteLength;
    },
    end: () => void (r.ended = true),
    credit() {},
    abort() {},
    congestion: () => null,
  };
  const resume = () => {
    r.reading = true;
    r.stopAt = Infinity;
    const n = r.owed;
    r.owed = 0;
    if (n) r.relay?.credit(n);
  };
  return { r, client, resume };
}

describe("a sandbox's stream budget", () => {
  it("credits a stream read at full speed in batches, not a frame per chunk, and never stalls it", async () => {
    const { link, fatal, start, creditsOf } = greedySupervisor(64 * MiB);
    const sid = link.allocStream();
    const tap = new OutputTap(link, sid, (r) => link.onFatal(r));
    const size = 32 * MiB;
    start(sid, size);
    const { r, client } = reader();
    r.relay = tap.attach(client, 0, () => {});
    for (let i = 0; i < 400 && !r.ended; i++) await settle();
    expect(fatal).toEqual([]);
    expect(r).toMatchObject({ bytes: size, ended: true, intact: true });
    // 512 chunks of 64 KiB; credit goes back in batches of up to 1 MiB (a quarter of a small window).
    expect(creditsOf(sid)).toBeLessThan(64);
    expect(creditsOf(sid)).toBeGreaterThanOrEqual(size / MiB - CHANNEL_INITIAL_WINDOW / MiB - 1);
  });

  it("streams nobody reads hold at most the budget; one more is refused naming the config key; all of it arrives once read", async () => {
    const budget = 4 * MiB;
    const { link, fatal, start } = greedySupervisor(budget);
    const taps: OutputTap[] = [];
    const size = 3 * MiB;
    // Each stream starts with the supervisor's initial window, out of the budget: 16 fit.
    for (let i = 0; i < budget / CHANNEL_INITIAL_WINDOW; i++) {
      const sid = link.allocStream();
      taps.push(new OutputTap(link, sid, (r) => link.onFatal(r)));
      start(sid, size);
    }
    expect(() => new OutputTap(link, link.allocStream(), () => {})).toThrow(/hold \d+ of the 4194304 bytes of unread output .*config streamBytesPerSandbox/);
    await settle();
    expect(link.streams.used).toBe(budget);
    expect(link.streams.peak).toBeLessThanOrEqual(budget);
    expect(taps.every((t) => t.total === CHANNEL_INITIAL_WINDOW)).toBe(true);

    // One reader attaches and reads: its window widens out of what is left (nothing), then the
    // others', as they are read to the end, go back and let the rest widen.
    const readers = taps.map(() => reader());
    for (const [i, tap] of taps.entries()) {
      readers[i]!.r.relay = tap.attach(readers[i]!.client, 0, () => {});
      await settle();
    }
    for (let i = 0; i < 200 && !readers.every(({ r }) => r.ended); i++) await settle();
    expect(fatal).toEqual([]);
    for (const { r } of readers) expect(r).toMatchObject({ bytes: size, ended: true, intact: true });
    expect(link.streams.peak).toBeLessThanOrEqual(budget);
    expect(link.streams.used).toBe(0);
  });

  it("windows widen only while read, up to STREAM_WINDOW, and a reader that stops leaves them held within the budget", async () => {
    // Less than the four streams' full windows: the budget, not the window, is what bounds them.
    const budget = 3 * STREAM_WINDOW;
    const { link, fatal, start } = greedySupervisor(budget);
    const size = 8 * STREAM_WINDOW;
    const taps = [0, 1, 2, 3].map(() => {
      const sid = link.allocStream();
      const tap = new OutputTap(link, sid, (r) => link.onFatal(r));
      start(sid, size);
      return tap;
    });
    // Each reader takes 2.5 windows, then stops granting credit.
    const readers = taps.map((tap) => {
      const rd = reader();
      rd.r.stopAt = 2.5 * STREAM_WINDOW;
      rd.r.relay = tap.attach(rd.client, 0, () => {});
      return rd;
    });
    for (let i = 0; i < 50; i++) await settle();
    expect(readers.every(({ r }) => r.bytes >= 2.5 * STREAM_WINDOW && r.bytes < size)).toBe(true);
    const held = link.streams.used;
    expect(held).toBeLessThanOrEqual(budget);
    expect(link.streams.peak).toBeLessThanOrEqual(budget);
    expect(held).toBeGreaterThan(4 * CHANNEL_INITIAL_WINDOW);
    const total = taps.reduce((n, t) => n + t.total, 0);
    const sent = readers.reduce((n, { r }) => n + r.bytes, 0);
    // What the daemon has from the supervisor and no client was sent is within the budget.
    expect(total - sent).toBeLessThanOrEqual(budget);
    // Reading on gets everything, in order.
    for (const rd of readers) rd.resume();
    for (let i = 0; i < 5000 && !readers.every(({ r }) => r.ended); i++) {
      for (const rd of readers) rd.resume();
      await settle();
    }
    expect(fatal).toEqual([]);
    for (const { r } of readers) expect(r).toMatchObject({ bytes: size, ended: true, intact: true });
    expect(link.streams.peak).toBeLessThanOrEqual(budget);
    expect(link.streams.used).toBe(0);
  });

  it("an ended process's unread output stays counted until a client attaches and is sent it", async () => {
    const { link, start } = greedySupervisor(4 * MiB);
    const sid = link.allocStream();
    const tap = new OutputTap(link, sid, () => {});
    start(sid, 100_000); // less than the initial window: all of it comes, then END
    await settle();
    expect(tap.done).toBe(true);
    expect(link.streams.used).toBe(100_000);
    const { r, client } = reader();
    r.relay = tap.attach(client, 0, () => {});
    await settle();
    expect(r).toMatchObject({ bytes: 100_000, ended: true, intact: true });
    expect(link.streams.used).toBe(0);
  });

  it("a new stream that does not fit first takes the room of ended processes' unread output nobody is attached to, oldest first, never a running one's", async () => {
    const { link, start } = greedySupervisor(4 * CHANNEL_INITIAL_WINDOW);
    const outputs = new ProcessOutputs();
    const open = (size: number) => {
      const sid = link.allocStream();
      const tap = outputs.tapFor(link, sid, () => {});
      start(sid, size);
      return tap;
    };
    const ended = [open(200_000), open(200_000)];
    const running = [open(8 * MiB), open(8 * MiB)];
    await settle();
    expect(ended.every((t) => t.done && t.total === 200_000)).toBe(true);
    expect(running.every((t) => !t.done && t.total === CHANNEL_INITIAL_WINDOW)).toBe(true);
    expect(link.streams.used).toBe(400_000 + 2 * CHANNEL_INITIAL_WINDOW);
    // One more needs 144 KiB more than is free: the oldest ended tap gives its output up, the other keeps it.
    running.push(open(8 * MiB));
    expect(ended.map((t) => t.start)).toEqual([200_000, 0]);
    await settle();
    expect(link.streams.used).toBe(200_000 + 3 * CHANNEL_INITIAL_WINDOW);
    // The next one takes the second ended tap's room; after that only running writers hold the budget, and they never give it up: refused.
    running.push(open(8 * MiB));
    expect(ended.map((t) => t.start)).toEqual([200_000, 200_000]);
    await settle();
    expect(link.streams.used).toBe(4 * CHANNEL_INITIAL_WINDOW);
    expect(() => outputs.tapFor(link, link.allocStream(), () => {})).toThrow(/streamBytesPerSandbox/);
    expect(running.every((t) => t.start === 0 && t.total === CHANNEL_INITIAL_WINDOW)).toBe(true);
  });

  it("a supervisor sending past a stream's window (as granted so far) is fatal", async () => {
    const { link, fatal } = greedySupervisor(64 * MiB);
    const sid = link.allocStream();
    // Nobody reads it, so no credit ever comes: the initial window is all it may send.
    new OutputTap(link, sid, (reason) => link.onFatal(reason));
    const send = (n: number) => link.proc.stdout!.emit("data", encodeChannelFrame(ChannelOp.Data, sid, Buffer.alloc(n)));
    send(CHANNEL_INITIAL_WINDOW);
    await settle();
    expect(fatal).toEqual([]);
    send(1);
    await settle();
    expect(fatal).toEqual(["flow control violated"]);
  });

  it("refuses a budget smaller than one stream's initial window", () => {
    expect(() => new StreamBudget(CHANNEL_INITIAL_WINDOW - 1)).toThrow(/at least 262144 bytes/);
    expect(STREAM_WINDOW).toBeGreaterThan(CHANNEL_INITIAL_WINDOW);
  });
});
