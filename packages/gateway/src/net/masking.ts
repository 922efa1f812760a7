import { randomFillSync } from "node:crypto";
import { createRequire } from "node:module";

/**
 * Masking (RFC 6455 §5.3) of what the gateway sends a daemon: every frame a client sends its
 * server is masked with a fresh, unpredictable key. A client's frame passed on keeps its bytes
 * but not its key (the client chose that one): it is re-masked in place, one XOR pass.
 */

type MaskFn = (source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number) => void;

/** bufferutil's native masking when installed (it is an optional dependency, as for ws), else plain JavaScript. */
const nativeMask: MaskFn | null = (() => {
  try {
    return (createRequire(import.meta.url)("bufferutil") as { mask: MaskFn }).mask;
  } catch {
    return null;
  }
})();

/** Key byte `i` (mod 4) of a u32 masking key. */
export const keyByte = (key: number, i: number): number => (key >>> (24 - 8 * (i & 3))) & 0xff;

const rotated = Buffer.alloc(4);

/**
 * XORs `source` with the u32 `key` as it falls from payload offset `at` on (payload byte j goes
 * with key byte j mod 4) into `output` from `offset`; `output` may be `source` itself.
 */
export function xorInto(source: Buffer, key: number, at: number, output: Buffer, offset: number): void {
  if (key === 0) {
    if (output !== source || offset !== 0) source.copy(output, offset);
    return;
  }
  for (let j = 0; j < 4; j++) rotated[j] = keyByte(key, at + j);
  if (nativeMask && source.length >= 32) return nativeMask(source, rotated, output, offset, source.length);
  for (let i = 0; i < source.length; i++) output[offset + i] = source[i]! ^ rotated[i & 3]!;
}

const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** A fresh, unpredictable, nonzero 4-byte masking key, from a pool refilled by the CSPRNG. */
export function nextKey(): number {
  for (;;) {
    if (poolAt === pool.length) {
      randomFillSync(pool);
      poolAt = 0;
    }
    const key = pool.readUInt32BE(poolAt);
    poolAt += 4;
    // Zero would leave the payload as it is on the wire (and means "unmasked" to Frame.key).
    if (key !== 0) return key;
  }
}
