import { FrameOp } from "@sbx/protocol/frames";

/**
 * Framing on the pipe between the daemon and a sandbox's supervisor:
 *   u32 length of what follows | u8 op | u32 stream id | payload
 * Ops are the stream frame ops plus Msg, a JSON control message on stream 0. The supervisor's
 * side is native/frame.c (same limits, same refusals).
 */
export const ChannelOp = { ...FrameOp, Msg: 4 } as const;
export type ChannelOp = (typeof ChannelOp)[keyof typeof ChannelOp];

export interface ChannelFrame {
  op: ChannelOp;
  id: number;
  payload: Buffer;
  /** The payload preceded by the frame's op and id bytes: five bytes a forwarder may rewrite in place. */
  framed: Buffer;
}

const HEADER = 9;

/** Largest frame either side accepts on the channel. */
export const MAX_CHANNEL_FRAME = 16 << 20;

/**
 * What the supervisor may send on a stream toward the daemon before any CREDIT: each such stream
 * starts with this window, and the daemon widens it (up to STREAM_WINDOW) only out of the
 * sandbox's stream budget (streams/budget.ts), so its output can never pin more daemon memory
 * than that budget. native/frame.h has the same value.
 */
export const CHANNEL_INITIAL_WINDOW = 256 * 1024;

/** Just the nine header bytes of a frame whose payload is written separately. */
export function channelHeader(op: ChannelOp, id: number, payloadBytes: number): Buffer {
  const out = Buffer.allocUnsafe(HEADER);
  out.writeUInt32BE(5 + payloadBytes, 0);
  out.writeUInt8(op, 4);
  out.writeUInt32BE(id >>> 0, 5);
  return out;
}

export function encodeChannelFrame(op: ChannelOp, id: number, payload?: Uint8Array): Buffer {
  const len = payload?.byteLength ?? 0;
  const out = Buffer.allocUnsafe(HEADER + len);
  out.writeUInt32BE(5 + len, 0);
  out.writeUInt8(op, 4);
  out.writeUInt32BE(id >>> 0, 5);
  if (payload) out.set(payload, HEADER);
  return out;
}

export function encodeMessage(msg: unknown): Buffer {
  return encodeChannelFrame(ChannelOp.Msg, 0, Buffer.from(JSON.stringify(msg)));
}

export function encodeCreditFrame(id: number, bytes: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(bytes >>> 0, 0);
  return encodeChannelFrame(ChannelOp.Credit, id, payload);
}

/**
 * Splits a byte stream into frames. Throws on a frame larger than `maxFrame` or with an
 * unknown op, so a misbehaving peer cannot make the reader buffer without bound.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrame: number) {}

  push(data: Buffer): ChannelFrame[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: ChannelFrame[] = [];
    while (this.buffered >= 4) {
      const head = this.peek(4);
      const len = head.readUInt32BE(0);
      if (len < 5 || len > this.maxFrame) throw new Error(`channel frame of ${len} bytes is outside 5..${this.maxFrame}`);
      if (this.buffered < 4 + len) break;
      const frame = this.take(4 + len);
      const op = frame.readUInt8(4);
      if (op > ChannelOp.Msg) throw new Error(`unknown channel op ${op}`);
      frames.push({ op: op as ChannelOp, id: frame.readUInt32BE(5), payload: frame.subarray(HEADER), framed: frame.subarray(4) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first;
    const out = Buffer.alloc(n);
    let off = 0;
    for (const c of this.chunks) {
      off += c.copy(out, off, 0, Math.min(c.length, n - off));
      if (off === n) break;
    }
    return out;
  }

  /**
   * The next `n` bytes. A frame inside one read is a view of it; one spread over several reads is
   * copied once, into a buffer of exactly its size (the bytes after it stay where they were read).
   */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    // Chunks used up are dropped in one splice (a shift each would be quadratic in tiny reads).
    let used = 0;
    for (let off = 0; off < n; ) {
      const c = this.chunks[used]!;
      const k = c.copy(out, off, 0, Math.min(c.length, n - off));
      off += k;
      if (k === c.length) used++;
      else this.chunks[used] = c.subarray(k);
    }
    this.chunks.splice(0, used);
    return out;
  }
}
