/**
 * Hostile tar archives and what each must be refused with: one table for every extractor that
 * takes archives from the other side (the client's `download` unpacker, the supervisor's
 * `fs.upload`, and the Python SDK's unpacker through the JSON copy that gen-tar-attacks.ts writes).
 *
 * Each case is a list of entries that follow a harmless first file, aimed at a layout every test
 * builds around its target directory: `base` holds `outside/` (an empty directory a write could
 * land in) and `sentinel/canary` (a file that must stay as it is).
 */
import { fileURLToPath } from "node:url";
import type { Entry } from "./tar.js";

/** Where the places an attack aims at are, from the target directory's point of view. */
export interface TarLayout {
  /** The directory holding `outside/` and `sentinel/canary`, absolute. */
  base: string;
  /** The same directory, relative to the target (`..`, or `../..`). */
  up: string;
}

/** What a refusal says: `refusing tar entry '<entry>': <why>`. */
export interface Refusal {
  entry: string;
  why: string;
}

export interface TarAttack {
  name: string;
  entries(l: TarLayout): Entry[];
  refusal(l: TarLayout): Refusal;
  /** The name must travel in the ustar header's prefix field, not in a pax record (tar-stream does so by itself; Python's tarfile needs USTAR_FORMAT). */
  format?: "ustar";
}

const dotdot = "contains '..' and would escape the target directory";
const absolute = "is an absolute path";
const throughLink = (link: string) => `'${link}' is a symlink; refusing to write through it`;
const refused = (entry: string, why: string): Refusal => ({ entry, why });

export const TAR_ATTACKS: TarAttack[] = [
  { name: "an entry named ../x", entries: () => [[{ name: "../x" }, "escaped"]], refusal: () => refused("../x", dotdot) },
  {
    name: "an entry overwriting a sibling's file",
    entries: (l) => [[{ name: `${l.up}/sentinel/canary` }, "pwned"]],
    refusal: (l) => refused(`${l.up}/sentinel/canary`, dotdot),
  },
  { name: "an absolute entry", entries: () => [[{ name: "/abs" }, "absolute"]], refusal: () => refused("/abs", absolute) },
  {
    name: "an absolute entry aimed at a writable place",
    entries: (l) => [[{ name: `${l.base}/outside/abs-pwned` }, "absolute"]],
    refusal: (l) => refused(`${l.base}/outside/abs-pwned`, absolute),
  },
  { name: "an entry named a/../../x", entries: () => [[{ name: "a/../../x" }, "escaped"]], refusal: () => refused("a/../../x", dotdot) },
  {
    name: "'..' hidden in a ustar prefix",
    entries: (l) => [[{ name: `${"d".repeat(120)}/../${l.up}/prefix-escape` }, "escaped"]],
    refusal: (l) => refused(`${"d".repeat(120)}/../${l.up}/prefix-escape`, dotdot),
    format: "ustar",
  },
  {
    name: "'..' in a pax path",
    entries: (l) => [[{ name: `é/../${l.up}/pax-escape` }, "escaped"]],
    refusal: (l) => refused(`é/../${l.up}/pax-escape`, dotdot),
  },
  {
    name: "a symlink to an absolute directory, then a file through it",
    entries: (l) => [[{ name: "link", type: "symlink", linkname: `${l.base}/outside` }], [{ name: "link/pwned" }, "through the link"]],
    refusal: () => refused("link/pwned", throughLink("link")),
  },
  {
    name: "a relative symlink climbing out, then a file through it",
    entries: (l) => [[{ name: "up", type: "symlink", linkname: `${l.up}/outside` }], [{ name: "up/pwned" }, "through the link"]],
    refusal: () => refused("up/pwned", throughLink("up")),
  },
  {
    name: "a symlink deep in the tree, then a file through it",
    entries: (l) => [[{ name: "a/b", type: "directory", mode: 0o755 }], [{ name: "a/b/c", type: "symlink", linkname: `../../${l.up}/sentinel` }], [{ name: "a/b/c/canary" }, "pwned"]],
    refusal: () => refused("a/b/c/canary", throughLink("c")),
  },
  {
    name: "a symlink, then a directory entry of the same name",
    entries: (l) => [[{ name: "d", type: "symlink", linkname: `${l.base}/outside` }], [{ name: "d", type: "directory", mode: 0o755 }], [{ name: "d/pwned" }, "through the link"]],
    refusal: () => refused("d", "something other than a directory already stands there"),
  },
  {
    name: "a hardlink to a sibling's file by a relative path",
    entries: (l) => [[{ name: "h", type: "link", linkname: `${l.up}/sentinel/canary` }]],
    refusal: (l) => refused(`${l.up}/sentinel/canary`, dotdot),
  },
  { name: "a hardlink to ../../etc/passwd", entries: () => [[{ name: "h", type: "link", linkname: "../../etc/passwd" }]], refusal: () => refused("../../etc/passwd", dotdot) },
  {
    name: "a hardlink to a sibling's file by an absolute path",
    entries: (l) => [[{ name: "h", type: "link", linkname: `${l.base}/sentinel/canary` }]],
    refusal: (l) => refused(`${l.base}/sentinel/canary`, absolute),
  },
  { name: "a hardlink to /etc/passwd", entries: () => [[{ name: "h", type: "link", linkname: "/etc/passwd" }]], refusal: () => refused("/etc/passwd", absolute) },
  {
    name: "a hardlink through a symlinked directory",
    entries: (l) => [[{ name: "s", type: "symlink", linkname: `${l.base}/sentinel` }], [{ name: "h", type: "link", linkname: "s/canary" }]],
    refusal: () => refused("h", throughLink("s")),
  },
  {
    name: "a hardlink to a symlink pointing out",
    entries: (l) => [[{ name: "s", type: "symlink", linkname: `${l.base}/sentinel/canary` }], [{ name: "h", type: "link", linkname: "s" }]],
    refusal: () => refused("h", "hardlink target 's' is not a file unpacked into the target directory"),
  },
  {
    name: "a hardlink to a file that is not there",
    entries: () => [[{ name: "h", type: "link", linkname: "missing" }]],
    refusal: () => refused("h", "hardlink target 'missing' is not a file unpacked into the target directory"),
  },
  {
    name: "a character device",
    entries: () => [[{ name: "null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 }]],
    refusal: () => refused("null", "is a character-device; only files, directories, symlinks and hardlinks are allowed"),
  },
  {
    name: "a block device",
    entries: () => [[{ name: "disk", type: "block-device", devmajor: 8, devminor: 0, mode: 0o660 }]],
    refusal: () => refused("disk", "is a block-device; only files, directories, symlinks and hardlinks are allowed"),
  },
  { name: "a fifo", entries: () => [[{ name: "pipe", type: "fifo" }]], refusal: () => refused("pipe", "is a fifo; only files, directories, symlinks and hardlinks are allowed") },
  { name: "a file entry naming the target itself", entries: () => [[{ name: "." }, "x"]], refusal: () => refused(".", "names the target directory itself") },
];

/** The harmless entry every attack follows, so that a refusal also has something to roll back. */
export const FIRST_ENTRY: Entry = [{ name: "first.txt" }, "unpacked before the bad entry"];

/** The message a refusal must contain. */
export const refusalText = ({ entry, why }: Refusal): string => `refusing tar entry '${entry}': ${why}`;

/** Where the Python tests read the table. */
export const TAR_ATTACKS_JSON = fileURLToPath(new URL("../../../python-bridge/python/tests/tar_attacks.json", import.meta.url));

/** The table for the Python tests, with `{base}` and `{up}` standing for the layout. */
export function tarAttacksJson(): string {
  const l = { base: "{base}", up: "{up}" };
  const cases = TAR_ATTACKS.map((a) => ({
    name: a.name,
    entries: a.entries(l).map(([header, body]) => ({ ...header, ...(body === undefined ? {} : { body: body.toString() }) })),
    refusal: refusalText(a.refusal(l)),
    ...(a.format ? { format: a.format } : {}),
  }));
  const generated = "Generated from packages/client/test/helpers/tar-attacks.ts by `npx tsx packages/client/test/helpers/gen-tar-attacks.ts`; do not edit.";
  // one case a line, so that a change to the table reads as a change to its cases
  return `{\n  "generated": ${JSON.stringify(generated)},\n  "cases": [\n${cases.map((c) => `    ${JSON.stringify(c)}`).join(",\n")}\n  ]\n}\n`;
}
