/**
 * WebSocket framing (RFC 6455 §5) for both of the gateway's sides, done here rather than by
 * `ws` so that frames pass through as bytes: a daemon's (server) frames reach the client as the
 * very bytes the daemon sent, and a client's frames reach the daemon as the bytes it sent with
 * only their masking key changed. Reading a frame costs no copy (its bytes stay slices of the
 * socket reads that brought them, however many); only its first payload bytes are looked at.
 */

import { keyByte, nextKey, xorInto } from "./masking.js";

export const Opcode = { Continuation: 0x0, Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa } as const;

/** Close codes (RFC 6455 §7.4.1) the gateway sends of its own. */
export const CloseCode = { Normal: 1000, GoingAway: 1001, ProtocolError: 1002, NoStatus: 1005, Abnormal: 1006, InvalidData: 1007, PolicyViolation: 1008, TooBig: 1009 } as const;

/** One frame as read: its bytes, header included, as slices of the socket's reads. */
export interface Frame {
  fin: boolean;
  opcode: number;
  /** Header and payload exactly as received (no copy made; still masked if the frame was). */
  raw: Buffer[];
  /** Header bytes, the masking key included. */
  headerLength: number;
  payloadLength: number;
  /** The masking key as a big-endian u32 (0 for an unmasked frame, or one payloadOf unmasked in place: masking with 0 changes nothing). */
  key: number;
}

/** A violation of the framing: the close code to answer it with, and what it was. */
export interface Violation {
  code: number;
  message: string;
}

/** Byte `i` of the frame's payload (i < payloadLength), unmasked, without joining its parts. */
export function payloadByte(frame: Frame, i: number): number {
  let at = frame.headerLength + i;
  for (const part of frame.raw) {
    if (at < part.length) return part[at]! ^ keyByte(frame.key, i);
    at -= part.length;
  }
  throw new RangeError(`payload byte ${i} of a ${frame.payloadLength}-byte frame`);
}

/** Byte `i` of a message's payload, unmasked, across its frames (a fragmented message's in order). */
export function messageByte(frames: readonly Frame[], i: number): number {
  for (const frame of frames) {
    if (i < frame.payloadLength) return payloadByte(frame, i);
    i -= frame.payloadLength;
  }
  throw new RangeError(`payload byte ${i} past the message's end`);
}

/** The payload's parts as slices of the frame's bytes (as received: still masked if the frame was). */
export function payloadParts(frame: Frame): Buffer[] {
  const parts: Buffer[] = [];
  let skip = frame.headerLength;
  for (const part of frame.raw) {
    if (skip >= part.length) {
      skip -= part.length;
      continue;
    }
    parts.push(skip > 0 ? part.subarray(skip) : part);
    skip = 0;
  }
  return parts;
}

/**
 * The frame's payload as one buffer, unmasked: a masked frame is unmasked in place (its bytes
 * change and its key becomes 0), and the parts are joined by a copy only when it spans reads.
 */
export function payloadOf(frame: Frame): Buffer {
  const parts = payloadParts(frame);
  if (frame.key !== 0) {
    let at = 0;
    for (const part of parts) {
      xorInto(part, frame.key, at, part, 0);
      at += part.length;
    }
    frame.key = 0;
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, frame.payloadLength);
}

/** Bytes of the header of a frame of `length` payload bytes, masked or not. */
const headerSize = (length: number, masked: boolean): number => (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);

/** Writes the header of a frame of `length` payload bytes at the start of `out` (with the masking key `key` unless null; final unless `fin` is false); returns its size. */
function writeHeader(out: Buffer, opcode: number, length: number, key: number | null, fin = true): number {
  out[0] = (fin ? 0x80 : 0) | opcode;
  const masked = key === null ? 0 : 0x80;
  let at = 2;
  if (length < 126) out[1] = masked | length;
  else if (length < 65536) {
    out[1] = masked | 126;
    out.writeUInt16BE(length, 2);
    at = 4;
  } else {
    out[1] = masked | 127;
    out.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    out.writeUInt32BE(length >>> 0, 6);
    at = 10;
  }
  if (key !== null) out.writeUInt32BE(key >>> 0, at);
  return key === null ? at : at + 4;
}

/** The header of a frame of `length` payload bytes (final unless `fin` is false); with a masking key when `key` is given. */
export function frameHeader(opcode: number, length: number, key: number | null, fin = true): Buffer {
  const header = Buffer.allocUnsafe(headerSize(length, key !== null));
  writeHeader(header, opcode, length, key, fin);
  return header;
}

/** A whole (final, unmasked) frame as a server sends it. */
export function serverFrame(opcode: number, payload: Buffer): Buffer[] {
  return [frameHeader(opcode, payload.length, null), payload];
}

/** A whole (final) frame as a client sends it: masked with a fresh key, in one buffer. */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const key = nextKey();
  const frame = Buffer.allocUnsafe(headerSize(payload.length, true) + payload.length);
  xorInto(payload, key, 0, frame, writeHeader(frame, opcode, payload.length, key));
  return frame;
}

/**
 * A client's frame re-masked for the daemon, without copying its payload: a new header (same
 * opcode and FIN bit) with a fresh key, and the payload's parts XORed in place from the client's
 * key to it. The frame's own bytes are changed: it must not be read again.
 */
export function remask(frame: Frame): Buffer[] {
  const key = nextKey();
  const header = frameHeader(frame.opcode, frame.payloadLength, key, frame.fin);
  const parts = payloadParts(frame);
  const change = (frame.key ^ key) >>> 0;
  let at = 0;
  for (const part of parts) {
    xorInto(part, change, at, part, 0);
    at += part.length;
  }
  return [header, ...parts];
}

/**
 * Splits a peer's byte stream into frames. A server's frames must be unmasked, a client's
 * masked (RFC 6455 §5.1). Stops at the first violation, which it returns with the close code it
 * calls for (the caller closes the connection): a frame masked or not against its side, reserved
 * bits (no extension is negotiated), an unknown opcode, a fragmented or oversized control frame
 * (1002), a payload over `maxPayload` (1009, from the header alone, before the payload arrives).
 * While paused it hands on nothing and keeps what it has read.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;
  private paused = false;

  constructor(
    private readonly maxPayload: number,
    private readonly onFrame: (frame: Frame) => void,
    private readonly from: "server" | "client" = "server",
  ) {}

  /** Takes one read's bytes and hands on every frame completed; the violation, or null. */
  push(chunk: Buffer): Violation | null {
    if (this.failed) return null;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    return this.paused ? null : this.drain();
  }

  /** Hands on nothing more until `resume()`. */
  pause(): void {
    this.paused = true;
  }

  /** Hands on the frames read meanwhile; the violation among them, or null. */
  resume(): Violation | null {
    this.paused = false;
    return this.failed ? null : this.drain();
  }

  /** Bytes read but not yet handed on as frames (a frame begun, or frames held while paused). */
  get held(): number {
    return this.buffered;
  }

  /** Reads no further (the connection is ending). */
  stop(): void {
    this.failed = true;
    this.chunks = [];
    this.buffered = 0;
  }

  private drain(): Violation | null {
    while (!this.paused && !this.failed) {
      if (this.buffered < 2) return null;
      const b0 = this.byteAt(0);
      const b1 = this.byteAt(1);
      const opcode = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      let length = b1 & 0x7f;
      let headerLength = 2;
      if (length === 126) {
        if (this.buffered < 4) return null;
        length = (this.byteAt(2) << 8) | this.byteAt(3);
        headerLength = 4;
      } else if (length === 127) {
        if (this.buffered < 10) return null;
        const high = ((this.byteAt(2) << 24) | (this.byteAt(3) << 16) | (this.byteAt(4) << 8) | this.byteAt(5)) >>> 0;
        const low = ((this.byteAt(6) << 24) | (this.byteAt(7) << 16) | (this.byteAt(8) << 8) | this.byteAt(9)) >>> 0;
        length = high * 2 ** 32 + low;
        headerLength = 10;
      }
      const problem = this.check(b0, opcode, masked, length);
      if (problem) {
        this.stop();
        return problem;
      }
      if (masked) headerLength += 4;
      if (this.buffered < headerLength + length) return null;
      const key = masked ? ((this.byteAt(headerLength - 4) << 24) | (this.byteAt(headerLength - 3) << 16) | (this.byteAt(headerLength - 2) << 8) | this.byteAt(headerLength - 1)) >>> 0 : 0;
      this.onFrame({ fin: (b0 & 0x80) !== 0, opcode, raw: this.take(headerLength + length), headerLength, payloadLength: length, key });
    }
    return null;
  }

  private check(b0: number, opcode: number, masked: boolean, length: number): Violation | null {
    const protocol = (message: string): Violation => ({ code: CloseCode.ProtocolError, message });
    if (b0 & 0x70) return protocol("a frame with reserved bits set");
    if (this.from === "server" && masked) return protocol("a masked frame (a server's frames are never masked)");
    if (this.from === "client" && !masked) return protocol("an unmasked frame (a client's frames are always masked)");
    if ((opcode > 0x2 && opcode < 0x8) || opcode > 0xa) return protocol(`a frame with the unknown opcode ${opcode}`);
    if (opcode >= 0x8 && (length > 125 || !(b0 & 0x80))) return protocol("a fragmented or oversized control frame");
    if (length > this.maxPayload) return { code: CloseCode.TooBig, message: `a ${length}-byte frame, over the ${this.maxPayload}-byte limit` };
    return null;
  }

  private byteAt(i: number): number {
    for (const chunk of this.chunks) {
      if (i < chunk.length) return chunk[i]!;
      i -= chunk.length;
    }
    throw new RangeError("past the bytes read");
  }

  /** The next `n` bytes, as slices of the reads. */
  private take(n: number): Buffer[] {
    const out: Buffer[] = [];
    this.buffered -= n;
    let used = 0;
    while (n > 0) {
      const chunk = this.chunks[used]!;
      if (chunk.length <= n) {
        out.push(chunk);
        used++;
        n -= chunk.length;
      } else {
        out.push(chunk.subarray(0, n));
        this.chunks[used] = chunk.subarray(n);
        n = 0;
      }
    }
    // One splice per frame, not a shift per read: a frame may span thousands of reads.
    if (used > 0) this.chunks.splice(0, used);
    return out;
  }
}
