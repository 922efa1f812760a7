/**
 * A process's output as the daemon relays and keeps it: a large frame goes to the client with no
 * copy (its channel header rewritten in place) and is kept as it is; a small piece of a larger
 * read is copied, so the tail the daemon keeps never pins whole read buffers.
 */
import { EventEmitter } from "node:events";
import { PassThrough } from "node:stream";
import type { ChildProcess } from "node:child_process";
import { describe, expect, it } from "vitest";
import { ChannelOp, encodeChannelFrame } from "../../src/channel/framing.js";
import { SupervisorLink } from "../../src/sandbox/supervisor-link.js";
import { OutputTap } from "../../src/streams/output-tap.js";
import type { Endpoint } from "../../src/streams/relay.js";

function setup() {
  const proc = Object.assign(new EventEmitter(), { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() });
  const link = new SupervisorLink(proc as unknown as ChildProcess, { info() {}, warn() {}, error() {} }, "sbx_test");
  const sid = link.allocStream();
  const tap = new OutputTap(link, sid, (reason) => link.onFatal(reason));
  const sent: { chunk: Uint8Array; framed?: Buffer }[] = [];
  const client: Endpoint = { data: (chunk, framed) => void sent.push({ chunk, framed }), end() {}, credit() {}, abort() {}, congestion: () => null };
  return { proc, sid, tap, sent, client };
}

const settle = () => new Promise((r) => setImmediate(r));

describe("OutputTap", () => {
  it("relays a large frame without copying it and keeps it for a client that attaches later", async () => {
    const { proc, sid, tap, sent, client } = setup();
    tap.attach(client, 0, () => {});
    const wire = encodeChannelFrame(ChannelOp.Data, sid, Buffer.alloc(256 * 1024, 7));
    for (let off = 0; off < wire.length; off += 65536) proc.stdout.write(wire.subarray(off, off + 65536));
    await settle();
    expect(sent).toHaveLength(1);
    const { chunk, framed } = sent[0]!;
    expect(chunk.byteLength).toBe(256 * 1024);
    // the frame reader's one buffer: header scratch, then the payload the tap also keeps
    expect(framed!.buffer).toBe(chunk.buffer);
    expect(framed!.subarray(5).equals(Buffer.from(chunk))).toBe(true);
    // a second client gets the kept bytes, framed afresh (no scratch header to share)
    const again: Uint8Array[] = [];
    const againFramed: (Buffer | undefined)[] = [];
    tap.attach({ ...client, data: (c, f) => void (again.push(c), againFramed.push(f)) }, 0, () => {});
    expect(againFramed.every((f) => f === undefined)).toBe(true);
    expect(again.reduce((n, c) => n + c.byteLength, 0)).toBe(256 * 1024);
    expect(again.every((c) => Buffer.from(c).every((b) => b === 7))).toBe(true);
  });

  it("copies small frames out of the read they came in, with room for the client's header", async () => {
    const { proc, sid, tap, sent, client } = setup();
    tap.attach(client, 0, () => {});
    const frames = Array.from({ length: 100 }, (_, i) => encodeChannelFrame(ChannelOp.Data, sid, Buffer.alloc(100, i)));
    proc.stdout.write(Buffer.concat(frames)); // one 10 KiB read
    await settle();
    expect(sent).toHaveLength(100);
    sent.forEach(({ chunk, framed }, i) => {
      expect(Buffer.from(chunk).every((b) => b === i)).toBe(true);
      expect(framed!.subarray(5).equals(Buffer.from(chunk))).toBe(true);
      // not a view of the 10 KiB read: kept alone, it would pin all of it
      expect(chunk.buffer.byteLength).toBeLessThan(10_000);
    });
    expect(tap.keptLength).toBe(100 * 100);
  });
});
