/**
 * Finding and replacing a set of byte patterns in a stream or a buffer, chunk-boundary safe.
 * Generic: it knows nothing about secrets (the secrets code gives it placeholders and values).
 */
import { Transform, type TransformCallback } from "node:stream";

/**
 * Replaces every occurrence of any pattern in a byte stream, chunk-boundary safe: the tail of a
 * chunk is held back only while it could still be the start of a pattern (so a stream of events
 * that happen not to end in one is passed on at once, not a chunk late). `replacement(i)` gives
 * the bytes for pattern `i`, or throws to end the stream with that error; bytes before a match
 * are only passed on once the match has been decided.
 */
export class StreamReplacer extends Transform {
  private carry: Buffer = Buffer.alloc(0);
  private readonly matcher: Replacer;

  constructor(patterns: readonly Buffer[], replacement: (index: number) => Buffer) {
    super();
    this.matcher = new Replacer(patterns, replacement);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
      this.carry = Buffer.from(buf.subarray(this.matcher.replace(buf, false, (b) => this.push(b))));
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      this.matcher.replace(this.carry, true, (b) => this.push(b));
      this.carry = Buffer.alloc(0);
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/** The matching behind {@link StreamReplacer}, also used whole on a buffer already complete. */
export class Replacer {
  /** The longest prefix all patterns share (placeholders: SBX_SECRET_): searched first, so a clean chunk costs one scan. */
  private readonly prefix: Buffer;

  constructor(
    private readonly patterns: readonly Buffer[],
    private readonly replacement: (index: number) => Buffer,
  ) {
    this.prefix = commonPrefix(patterns);
  }

  /** `buf` with every match replaced. */
  replaceAll(buf: Buffer): Buffer {
    const out: Buffer[] = [];
    this.replace(buf, true, (b) => out.push(b));
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /**
   * Emits `buf` with its complete matches replaced, up to where a pattern could still be
   * starting (all of it when `final`). A match is taken only if no longer-pending pattern
   * starts before it. Returns where it stopped.
   */
  replace(buf: Buffer, final: boolean, emit: (bytes: Buffer) => void): number {
    let pos = 0;
    let held = final ? buf.length : this.pendingFrom(buf, 0);
    for (;;) {
      // Only a match that ran past the held tail can change where that tail starts.
      if (pos > held) held = this.pendingFrom(buf, pos);
      const m = this.nextMatch(buf, pos, held);
      if (!m) {
        if (held > pos) emit(buf.subarray(pos, held));
        return held;
      }
      const replacement = this.replacement(m.index);
      if (m.start > pos) emit(buf.subarray(pos, m.start));
      emit(replacement);
      pos = m.start + this.patterns[m.index]!.length;
    }
  }

  /**
   * The earliest position from `from` whose rest of `buf` is a proper prefix of some pattern;
   * buf.length if none. Per pattern, only the places its first byte occurs are compared.
   */
  private pendingFrom(buf: Buffer, from: number): number {
    let best = buf.length;
    for (const p of this.patterns) {
      const first = Math.max(from, buf.length - p.length + 1);
      for (let i = buf.indexOf(p[0]!, first); i !== -1 && i < best; i = buf.indexOf(p[0]!, i + 1)) {
        if (buf.compare(p, 0, buf.length - i, i, buf.length) === 0) {
          best = i;
          break;
        }
      }
    }
    return best;
  }

  private nextMatch(buf: Buffer, from: number, cutoff: number): { start: number; index: number } | null {
    if (this.patterns.length === 0) return null;
    if (this.prefix.length === 0) {
      // No shared prefix: the earliest start of any pattern wins, the longest at a tie.
      let best: { start: number; index: number } | null = null;
      this.patterns.forEach((p, i) => {
        const at = buf.indexOf(p, from);
        if (at === -1 || at >= cutoff) return;
        if (!best || at < best.start || (at === best.start && p.length > this.patterns[best.index]!.length)) best = { start: at, index: i };
      });
      return best;
    }
    for (let at = buf.indexOf(this.prefix, from); at !== -1 && at < cutoff; at = buf.indexOf(this.prefix, at + 1)) {
      let best = -1;
      for (let i = 0; i < this.patterns.length; i++) {
        const p = this.patterns[i]!;
        if (at + p.length <= buf.length && buf.compare(p, 0, p.length, at, at + p.length) === 0 && (best === -1 || p.length > this.patterns[best]!.length)) best = i;
      }
      if (best !== -1) return { start: at, index: best };
    }
    return null;
  }
}

function commonPrefix(patterns: readonly Buffer[]): Buffer {
  if (patterns.length === 0) return Buffer.alloc(0);
  let n = Math.min(...patterns.map((p) => p.length));
  for (const p of patterns) {
    let i = 0;
    while (i < n && p[i] === patterns[0]![i]) i++;
    n = i;
  }
  return Buffer.from(patterns[0]!.subarray(0, n));
}
