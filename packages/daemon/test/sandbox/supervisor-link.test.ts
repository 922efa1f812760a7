/**
 * The supervisor runs beside untrusted code; if that code ever subverted it, what it writes to
 * the daemon must only end that one sandbox, with a reason. These tests play a subverted
 * supervisor against the daemon's real SupervisorLink.
 */
import { EventEmitter } from "node:events";
import { PassThrough } from "node:stream";
import type { ChildProcess } from "node:child_process";
import { describe, expect, it } from "vitest";
import { STREAM_WINDOW } from "@sbx/protocol";
import { CHANNEL_INITIAL_WINDOW, ChannelOp, FrameReader, encodeChannelFrame, encodeMessage } from "../../src/channel/framing.js";
import { SupervisorError, SupervisorLink } from "../../src/sandbox/supervisor-link.js";
import { Relay, type Endpoint } from "../../src/streams/relay.js";

function fakeSupervisor() {
  const proc = Object.assign(new EventEmitter(), { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() });
  const log = { info() {}, warn() {}, error() {} };
  const link = new SupervisorLink(proc as unknown as ChildProcess, log, "sbx_test");
  const fatal: string[] = [];
  link.onFatal = (reason) => fatal.push(reason);
  const send = (frame: Buffer) => proc.stdout.write(frame);
  const settle = () => new Promise((r) => setImmediate(r));
  return { link, fatal, send, settle };
}

const message = (m: unknown) => encodeMessage(m);

describe("a subverted supervisor", () => {
  it.each([
    ["an oversized frame length", Buffer.from([0xff, 0xff, 0xff, 0xff, 4]), /channel frame of \d+ bytes is outside/],
    ["an unknown op", encodeChannelFrame(9 as ChannelOp, 0, Buffer.from("x")), /unknown channel op 9/],
    ["a message that is not JSON", encodeChannelFrame(ChannelOp.Msg, 0, Buffer.from("{not-json")), /malformed JSON message/],
    ["a message of unknown shape", message({ t: "root-please" }), /message of unknown shape/],
    ["a reply to a call never made", message({ t: "reply", id: 999999, ok: true, v: null }), /reply to unknown call 999999/],
    ["an error code it may not use", message({ t: "reply", id: 1, ok: false, code: "SandboxNotFound", message: "x" }), /message of unknown shape/],
  ])("%s is fatal for that sandbox", async (_name, frame, reason) => {
    const { fatal, send, settle } = fakeSupervisor();
    send(frame);
    await settle();
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatch(reason);
  });

  it("a result that does not fit the method's schema rejects the call and is fatal", async () => {
    const { link, fatal, send, settle } = fakeSupervisor();
    const call = link.call("fs.stat", { path: "/x" });
    send(message({ t: "reply", id: 1, ok: true, v: { isFile: "yes" } }));
    await expect(call).rejects.toBeInstanceOf(SupervisorError);
    await settle();
    expect(fatal[0]).toMatch(/fs\.stat: result\./);
  });

  it("sending more than the window on a stream is fatal, and nothing past the window is forwarded", async () => {
    const { link, fatal, send, settle } = fakeSupervisor();
    const received: number[] = [];
    let relay: Relay | null = null;
    // A client that reads and credits every byte: the window widens as it does, up to STREAM_WINDOW.
    const client: Endpoint = { data: (c) => void (received.push(c.byteLength), relay!.credit(c.byteLength)), end() {}, credit() {}, abort() {}, congestion: () => null };
    const sid = link.allocStream();
    relay = new Relay(link.endpoint(sid), client, (reason) => link.onFatal(reason), () => link.removeRelay(sid), link.streams.open());
    link.addRelay(sid, relay, true);
    const credits: number[] = [];
    const frames = new FrameReader(1 << 20);
    link.proc.stdin!.on("data", (d: Buffer) => frames.push(d).forEach((f) => f.op === ChannelOp.Credit && credits.push(f.payload.readUInt32BE(0))));
    const chunk = Buffer.alloc(64 * 1024);
    let granted = CHANNEL_INITIAL_WINDOW;
    let sent = 0;
    // Exactly what was granted, each time, until the window is as wide as it gets.
    while (sent < 4 * STREAM_WINDOW) {
      for (; sent + chunk.length <= granted; sent += chunk.length) send(encodeChannelFrame(ChannelOp.Data, sid, chunk));
      await settle();
      granted = CHANNEL_INITIAL_WINDOW + credits.reduce((a, b) => a + b, 0);
    }
    expect(fatal).toEqual([]);
    expect(relay.window).toBe(STREAM_WINDOW);
    expect(received.reduce((a, b) => a + b, 0)).toBe(sent);
    // The client stops crediting; one chunk past what was granted is a violation and is not forwarded.
    client.data = (c) => void received.push(c.byteLength);
    for (; sent + chunk.length <= granted; sent += chunk.length) send(encodeChannelFrame(ChannelOp.Data, sid, chunk));
    send(encodeChannelFrame(ChannelOp.Data, sid, chunk));
    await settle();
    expect(received.reduce((a, b) => a + b, 0)).toBe(granted);
    expect(fatal).toEqual(["flow control violated"]);
  });

  it("a stream from the sandbox cannot be registered without a window from its budget", () => {
    const { link } = fakeSupervisor();
    const sid = link.allocStream();
    const noop: Endpoint = { data() {}, end() {}, credit() {}, abort() {}, congestion: () => null };
    expect(() => link.addRelay(sid, new Relay(link.endpoint(sid), noop, () => {}, () => {}), true)).toThrow(/no window from its stream budget/);
  });

  it("DATA on a stream that flows into the sandbox is fatal", async () => {
    const { link, fatal, send, settle } = fakeSupervisor();
    const sid = link.allocStream();
    const noop: Endpoint = { data() {}, end() {}, credit() {}, abort() {}, congestion: () => null };
    link.addRelay(sid, new Relay(noop, link.endpoint(sid), () => {}, () => {}), false);
    send(encodeChannelFrame(ChannelOp.Data, sid, Buffer.from("x")));
    await settle();
    expect(fatal[0]).toMatch(/DATA on inbound stream/);
  });
});
