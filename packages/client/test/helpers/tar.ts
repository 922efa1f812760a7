import * as tar from "tar-stream";

/** One entry of a hand-made archive: its header (name required) and body. */
export type Entry = [Partial<tar.Header> & { name: string }, (string | Buffer)?];

/** A tar archive exactly as given, with no sanitising of names, links or types: hostile archives for tests. */
export function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on("data", (c: unknown) => chunks.push(c as Buffer));
    pack.on("end", () => resolve(Buffer.concat(chunks)));
    pack.on("error", reject);
  });
  for (const [header, body] of entries) {
    const size = body === undefined ? 0 : Buffer.byteLength(body);
    pack.entry({ mode: 0o644, mtime: new Date(1_700_000_000_000), ...header, ...(header.type === undefined || header.type === "file" ? { size } : {}) }, body ?? "");
  }
  pack.finalize();
  return done;
}
