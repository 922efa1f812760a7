/**
 * fs.download reads names from the sandbox's own tree, which code inside controls: they are
 * hostile input to the supervisor's tar writer. Names with newlines, '=' and bytes that are not
 * UTF-8, names of 255 bytes, paths far past ustar's 255, long link targets, FIFOs and sockets
 * all come out as a well-formed archive (or, past the 4 KiB name limit, as a clean error), and
 * a FIFO in the tree never hangs the download.
 */
import { randomBytes } from "node:crypto";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RpcError } from "@sbx/client";
import { useSandbox } from "../helpers/fixtures.js";

const { sb } = useSandbox();
let host: string;

beforeAll(async () => {
  host = await fsp.mkdtemp(join(tmpdir(), "sbx-download-names-"));
});
afterAll(async () => {
  if (host) await fsp.rm(host, { recursive: true, force: true });
});

/** Every entry below root: relative path, type and (for files) content or (for links) target. */
async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  async function visit(path: string) {
    for (const name of await fsp.readdir(path)) {
      const p = join(path, name);
      const st = await fsp.lstat(p);
      const rel = relative(root, p);
      if (st.isSymbolicLink()) out.push(`l ${rel} -> ${await fsp.readlink(p)}`);
      else if (st.isDirectory()) {
        out.push(`d ${rel}`);
        await visit(p);
      } else out.push(`f ${rel} ${await fsp.readFile(p, "utf8")}`);
    }
  }
  await visit(root);
  return out.sort();
}

it("hostile names come out as a well-formed archive with every entry intact", async () => {
  const deep = Array.from({ length: 12 }, (_, i) => `${String(i).padStart(2, "0")}${"d".repeat(240)}`).join("/");
  const long255 = "n".repeat(255);
  const target = `${"t".repeat(200)}/`.repeat(4) + "end";
  const made = String.raw`
import os, socket
os.makedirs("src", exist_ok=True)
os.chdir("src")
for name, text in [("new\nline", "1"), ("tab\tand=equals", "2"), ("${long255}", "3"), ("quote\"and'apostrophe", "4")]:
    open(name, "w").write(text)
open(b"caf\xe9", "w").write("latin-1")
os.makedirs("${deep}")
open("${deep}/leaf", "w").write("deep")
os.symlink("${target}", "long-link")
os.mkfifo("fifo")
s = socket.socket(socket.AF_UNIX); s.bind("sock")
print("made")`;
  expect(await sb.sh`python3 -c ${made}`.text()).toBe("made\n");
  const back = join(host, "hostile");
  await sb.fs.download("src", back);
  const got = await tree(back);
  const dirs = deep.split("/").map((_, i, all) => `d ${all.slice(0, i + 1).join("/")}`);
  expect(got).toEqual(
    [
      "f new\nline 1",
      "f tab\tand=equals 2",
      `f ${long255} 3`,
      "f quote\"and'apostrophe 4",
      "f caf\uFFFD latin-1", // the byte 0xE9 alone is not UTF-8: the client's tar reader makes it U+FFFD
      ...dirs,
      `f ${deep}/leaf deep`,
      `l long-link -> ${target}`,
    ].sort(),
  );
  expect(deep.length).toBeGreaterThan(2900);
  // The sandbox answers as before.
  expect(await sb.sh`echo alive`.text()).toBe("alive\n");
});

it("a path past the 4 KiB name limit is a clean ENAMETOOLONG, and the supervisor carries on", async () => {
  const component = "x".repeat(250);
  const tooDeep = Array.from({ length: 17 }, () => component).join("/");
  expect(await sb.sh`mkdir -p over/${tooDeep} && echo made`.text()).toBe("made\n");
  const err = await sb.fs.download("over", join(host, `over-${randomBytes(3).toString("hex")}`)).then(
    () => null,
    (e: unknown) => e as RpcError,
  );
  expect(err).toBeInstanceOf(RpcError);
  expect(err!.errno).toBe("ENAMETOOLONG");
  expect(await sb.sh`echo alive`.text()).toBe("alive\n");
});
