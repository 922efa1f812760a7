import { randomFillSync } from "node:crypto";
import { createRequire } from "node:module";

/**
 * WebSocket framing (RFC 6455 §5) for the gateway's connections to daemons, done here rather
 * than by `ws` so that a daemon's frames reach the client as the very bytes the daemon sent:
 * a server's frames are unmasked on both of the gateway's sides, so a frame read from a daemon
 * is already a valid frame to the client. Reading one costs no copy (its bytes stay slices of
 * the socket reads that brought them, however many); only its first payload bytes are looked at.
 */

export const Opcode = { Continuation: 0x0, Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa } as const;

/** One frame as read: its bytes, header included, as slices of the socket's reads. */
export interface Frame {
  fin: boolean;
  opcode: number;
  /** Header and payload exactly as received (no copy made). */
  raw: Buffer[];
  headerLength: number;
  payloadLength: number;
}

/** The frame's payload as one buffer (a copy only when it spans socket reads). */
export function payloadOf(frame: Frame): Buffer {
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
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, frame.payloadLength);
}

/** Byte `i` of the frame's payload (i < payloadLength), without joining its parts. */
export function payloadByte(frame: Frame, i: number): number {
  let at = frame.headerLength + i;
  for (const part of frame.raw) {
    if (at < part.length) return part[at]!;
    at -= part.length;
  }
  throw new RangeError(`payload byte ${i} of a ${frame.payloadLength}-byte frame`);
}

/**
 * Splits a server's byte stream into frames. Stops at the first violation, which it returns
 * in words (the caller closes the connection): a masked frame, reserved bits (no extension is
 * negotiated), a fragmented or oversized control frame, a payload over `maxPayload`.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  constructor(
    private readonly maxPayload: number,
    private readonly onFrame: (frame: Frame) => void,
  ) {}

  /** Takes one read's bytes and hands on every frame completed; a violation's description, or null. */
  push(chunk: Buffer): string | null {
    if (this.failed) return null;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < 2) return null;
      const b0 = this.byteAt(0);
      const b1 = this.byteAt(1);
      const opcode = b0 & 0x0f;
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
      const problem =
        b0 & 0x70
          ? "a frame with reserved bits set"
          : b1 & 0x80
            ? "a masked frame (a server's frames are never masked)"
            : opcode >= 0x8 && (length > 125 || !(b0 & 0x80))
              ? "a fragmented or oversized control frame"
              : (opcode > 0x2 && opcode < 0x8) || opcode > 0xa
                ? `a frame with the unknown opcode ${opcode}`
                : length > this.maxPayload
                  ? `a ${length}-byte frame, over the ${this.maxPayload}-byte limit`
                  : null;
      if (problem) {
        this.failed = true;
        this.chunks = [];
        this.buffered = 0;
        return problem;
      }
      if (this.buffered < headerLength + length) return null;
      this.onFrame({ fin: (b0 & 0x80) !== 0, opcode, raw: this.take(headerLength + length), headerLength, payloadLength: length });
      if (this.failed) return null;
    }
  }

  /** Reads no further (the connection is ending). */
  stop(): void {
    this.failed = true;
    this.chunks = [];
    this.buffered = 0;
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

type MaskFn = (source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number) => void;

/** bufferutil's native masking when installed (it is an optional dependency, as for ws), else plain JavaScript. */
const nativeMask: MaskFn | null = (() => {
  try {
    return (createRequire(import.meta.url)("bufferutil") as { mask: MaskFn }).mask;
  } catch {
    return null;
  }
})();

function maskInto(source: Buffer, mask: Buffer, output: Buffer, offset: number): void {
  if (nativeMask && source.length >= 32) return nativeMask(source, mask, output, offset, source.length);
  for (let i = 0; i < source.length; i++) output[offset + i] = source[i]! ^ mask[i & 3]!;
}

const masks = Buffer.alloc(4096);
let maskAt = masks.length;

/** A fresh, unpredictable 4-byte masking key (RFC 6455 §5.3), from a pool refilled by the CSPRNG. */
function nextMask(): Buffer {
  if (maskAt === masks.length) {
    randomFillSync(masks);
    maskAt = 0;
  }
  maskAt += 4;
  return masks.subarray(maskAt - 4, maskAt);
}

/** A whole (final) frame as a client sends it: masked with a fresh key, in one buffer. */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const offset = 2 + lengthBytes + 4;
  const frame = Buffer.allocUnsafe(offset + length);
  frame[0] = 0x80 | opcode;
  if (lengthBytes === 0) frame[1] = 0x80 | length;
  else if (lengthBytes === 2) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  const mask = nextMask();
  mask.copy(frame, offset - 4);
  maskInto(payload, mask, frame, offset);
  return frame;
}

/** A whole (final, unmasked) frame as a server sends it: for a message the gateway reassembled from fragments. */
export function serverFrame(opcode: number, payload: Buffer): Buffer[] {
  const length = payload.length;
  const header = Buffer.allocUnsafe(length < 126 ? 2 : length < 65536 ? 4 : 10);
  header[0] = 0x80 | opcode;
  if (length < 126) header[1] = length;
  else if (length < 65536) {
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 127;
    header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    header.writeUInt32BE(length >>> 0, 6);
  }
  return [header, payload];
}
