/** Reads a whole byte stream into one array; past `max` bytes the stream is cancelled and `tooBig()` thrown. */
export async function collectBytes(stream: ReadableStream<Uint8Array>, max = Infinity, tooBig?: () => Error): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (;;) {
    const { value: chunk, done } = await reader.read();
    if (done) break;
    size += chunk.byteLength;
    if (size > max) {
      await reader.cancel("over the byte limit").catch(() => {});
      throw tooBig ? tooBig() : new RangeError(`more than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
