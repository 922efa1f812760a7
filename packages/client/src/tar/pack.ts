import { createReadStream } from "node:fs";
import * as fsp from "node:fs/promises";
import { basename, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tar from "tar-stream";

export interface PackResult {
  entries: number;
  bytes: number;
}

/**
 * Packs the file or directory tree at `root` into a tar stream (names relative to `root`;
 * a single file is named by its basename). Symlinks stay symlinks; sockets, FIFOs and
 * devices are skipped. `done` settles once the archive is complete.
 */
export function packTree(root: string): { stream: Readable; done: Promise<PackResult> } {
  const pack = tar.pack();
  let entries = 0;
  let bytes = 0;

  async function add(path: string, name: string): Promise<void> {
    const st = await fsp.lstat(path);
    const common = { name, mode: st.mode & 0o777, mtime: st.mtime };
    if (st.isDirectory()) {
      if (name) {
        pack.entry({ ...common, type: "directory" });
        entries++;
      }
      const children = (await fsp.readdir(path)).sort();
      for (const child of children) await add(join(path, child), name ? `${name}/${child}` : child);
    } else if (st.isSymbolicLink()) {
      pack.entry({ ...common, type: "symlink", linkname: await fsp.readlink(path) });
      entries++;
    } else if (st.isFile()) {
      const size = st.size;
      await new Promise<void>((resolve, reject) => {
        const entry = pack.entry({ ...common, type: "file", size }, (err) => (err ? reject(err) : resolve()));
        if (size === 0) return void entry.end(undefined as never);
        pipeline(createReadStream(path, { start: 0, end: size - 1, highWaterMark: 256 * 1024 }), entry).catch(reject);
      });
      entries++;
      bytes += size;
    }
  }

  const done = (async () => {
    const st = await fsp.lstat(root);
    await add(root, st.isDirectory() ? "" : basename(root));
    pack.finalize();
    return { entries, bytes };
  })();
  done.catch((err) => pack.destroy(err));
  return { stream: pack as unknown as Readable, done };
}
