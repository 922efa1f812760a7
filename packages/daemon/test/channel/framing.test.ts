/**
 * The daemon's reader of the supervisor's channel: frames arrive cut anywhere by pipe reads (64 KiB
 * in Node). A frame inside one read is a view of it; one spread over reads is copied once into a
 * buffer of exactly its size, so what the daemon keeps of it (a process's output tail) pins no more.
 */
import { describe, expect, it } from "vitest";
import { ChannelOp, FrameReader, MAX_CHANNEL_FRAME, encodeChannelFrame } from "../../src/channel/framing.js";

const frames = (sizes: number[]) =>
  Buffer.concat(sizes.map((n, i) => encodeChannelFrame(ChannelOp.Data, i + 1, Buffer.alloc(n, i + 1))));

/** Feeds `wire` to a reader in pieces of `cut` bytes; all frames it returned. */
function readAll(wire: Buffer, cut: number) {
  const r = new FrameReader(MAX_CHANNEL_FRAME);
  const out = [];
  for (let off = 0; off < wire.length; off += cut) out.push(...r.push(Buffer.from(wire.subarray(off, off + cut))));
  return out;
}

describe("FrameReader", () => {
  it.each([1, 3, 4, 5, 9, 1000, 65536, 1 << 20])("returns the same frames whatever the reads' size (%i bytes)", (cut) => {
    const sizes = [0, 1, 70_000, 5, 262_144, 65_527, 3];
    const got = readAll(frames(sizes), cut);
    expect(got.map((f) => [f.op, f.id, f.payload.length])).toEqual(sizes.map((n, i) => [ChannelOp.Data, i + 1, n]));
    got.forEach((f, i) => expect(f.payload.every((b) => b === i + 1)).toBe(true));
    // `framed` is the payload preceded by the op and id bytes, in the same memory
    for (const f of got) expect(f.framed.subarray(5).equals(f.payload) && f.framed.buffer === f.payload.buffer).toBe(true);
  });

  it("a frame spread over reads lands in a buffer of exactly its size; one inside a read is a view of it", () => {
    const got = readAll(frames([262_144, 100, 100]), 65536);
    expect(got[0]!.payload.buffer.byteLength).toBe(4 + 5 + 262_144);
    // the two small frames came in the last read, after the big one's tail: views of that read
    expect(got[1]!.payload.buffer).toBe(got[2]!.payload.buffer);
  });

  it("refuses a length over the limit or an unknown op before buffering it", () => {
    const r = new FrameReader(1024);
    expect(() => r.push(Buffer.from([0, 0, 4, 6]))).toThrow(/channel frame of 1030 bytes is outside 5\.\.1024/);
    const bad = encodeChannelFrame(7 as ChannelOp, 0);
    expect(() => new FrameReader(1024).push(bad)).toThrow(/unknown channel op 7/);
    // a header cut after two bytes is only judged once its length is whole
    const split = new FrameReader(1024);
    expect(split.push(Buffer.from([0, 0]))).toEqual([]);
    expect(() => split.push(Buffer.from([4, 6]))).toThrow(/outside 5\.\.1024/);
  });
});
