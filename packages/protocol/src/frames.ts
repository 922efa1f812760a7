/**
 * Binary stream frames. Bulk bytes (process stdio, file contents, tar archives) travel as
 * binary WebSocket messages beside the JSON-RPC text messages:
 *
 *   byte 0      op (DATA, END, CREDIT, ABORT)
 *   bytes 1..4  stream id, big-endian u32, chosen by the client when it names the stream
 *   bytes 5..   payload: DATA bytes; CREDIT a big-endian u32 byte count; ABORT a UTF-8 reason
 *
 * Flow control is credit based: a sender may have at most STREAM_WINDOW bytes sent and not
 * yet credited back; the receiver sends CREDIT as its consumer takes bytes.
 */
export const FrameOp = { Data: 0, End: 1, Credit: 2, Abort: 3 } as const;
export type FrameOp = (typeof FrameOp)[keyof typeof FrameOp];

/** Bytes a sender may have in flight per stream before it waits for CREDIT. */
export const STREAM_WINDOW = 8 << 20;
/**
 * Receivers grant credit in batches of at least this many bytes (fewer frames). It is a fixed
 * size, not a share of the window: it stays below the smallest window any hop of a stream starts
 * with (the daemon opens a sandbox's output with 256 KiB and widens it as it is read), so a
 * sender can never wait on credit a receiver is holding back.
 */
export const CREDIT_BATCH = 128 * 1024;
/** Largest DATA payload in one frame. */
export const MAX_CHUNK = 256 * 1024;
export const FRAME_HEADER = 5;

export interface Frame {
  op: FrameOp;
  stream: number;
  payload: Uint8Array;
}

/**
 * Small frames (headers, CREDIT, END) are cut from a shared 8 KiB block, as Node's Buffer pool
 * does: a Uint8Array of 9 bytes of its own lives on V8's heap until something asks for its
 * ArrayBuffer, as every socket write does, and then gets an ArrayBuffer of its own, which cost a
 * reader of 1 GiB of stdout 78 ms in its 16,384 CREDITs alone. A slice is never written again
 * once handed out (the block is replaced when full), so a send still queued keeps its bytes.
 */
const BLOCK = 8192;
let block = new Uint8Array(BLOCK);
let used = 0;

function small(n: number): Uint8Array {
  if (used + n > BLOCK) {
    block = new Uint8Array(BLOCK);
    used = 0;
  }
  const out = block.subarray(used, used + n);
  used += (n + 7) & ~7;
  return out;
}

function putU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
}

export function encodeFrame(op: FrameOp, stream: number, payload?: Uint8Array): Uint8Array {
  const size = FRAME_HEADER + (payload?.byteLength ?? 0);
  const out = size <= 64 ? small(size) : new Uint8Array(size);
  out[0] = op;
  putU32(out, 1, stream >>> 0);
  if (payload) out.set(payload, FRAME_HEADER);
  return out;
}

export function encodeCredit(stream: number, bytes: number): Uint8Array {
  const out = small(FRAME_HEADER + 4);
  out[0] = FrameOp.Credit;
  putU32(out, 1, stream >>> 0);
  putU32(out, 5, bytes >>> 0);
  return out;
}

export function encodeAbort(stream: number, reason: string): Uint8Array {
  return encodeFrame(FrameOp.Abort, stream, new TextEncoder().encode(reason.slice(0, 1024)));
}

/**
 * What is wrong with a frame of `byteLength` bytes whose first byte is `op` and whose stream id
 * is `stream`, or null: everything decodeFrame checks, for a reader that looks at the header only
 * (the gateway passes frames on without joining their payloads).
 */
export function frameProblem(byteLength: number, op: number, stream: number): string | null {
  if (byteLength < FRAME_HEADER) return "frame shorter than its header";
  if (op > FrameOp.Abort) return `unknown frame op ${op}`;
  if (stream === 0) return "frame for stream 0";
  const payload = byteLength - FRAME_HEADER;
  if (op === FrameOp.Data && payload > MAX_CHUNK) return `DATA frame of ${payload} bytes exceeds ${MAX_CHUNK}`;
  if (op === FrameOp.Credit && payload !== 4) return "CREDIT frame without a 4-byte count";
  if (op === FrameOp.End && payload !== 0) return "END frame with a payload";
  return null;
}

/** Decodes a frame, or returns a string describing why it is malformed. */
export function decodeFrame(data: Uint8Array): Frame | string {
  const stream = data.byteLength >= FRAME_HEADER ? new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1) : 0;
  const problem = frameProblem(data.byteLength, data[0] ?? 0, stream);
  if (problem) return problem;
  return { op: data[0] as FrameOp, stream, payload: data.subarray(FRAME_HEADER) };
}

/**
 * Decodes a frame that came as the fragments of one WebSocket message (a `ws` receiver with
 * `binaryType: "fragments"`). The SDK sends a DATA frame as two fragments, its five-byte header
 * and then the payload, so it never copies the payload to put the header in front: those two
 * are read without a copy. A message split any other way (a peer may split it as it likes) is
 * joined first.
 */
export function decodeFrameParts(parts: readonly Uint8Array[]): Frame | string {
  if (parts.length === 2 && parts[0]!.byteLength === FRAME_HEADER) {
    const [head, payload] = parts as [Uint8Array, Uint8Array];
    const stream = new DataView(head.buffer, head.byteOffset, FRAME_HEADER).getUint32(1);
    const problem = frameProblem(FRAME_HEADER + payload.byteLength, head[0]!, stream);
    return problem ?? { op: head[0] as FrameOp, stream, payload };
  }
  if (parts.length === 1) return decodeFrame(parts[0]!);
  const whole = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    whole.set(p, off);
    off += p.byteLength;
  }
  return decodeFrame(whole);
}

export function creditOf(frame: Frame): number {
  return new DataView(frame.payload.buffer, frame.payload.byteOffset, 4).getUint32(0);
}
