/**
 * `expandGlob` with the semantics of Deno's `@std/fs/expand_glob`: the glob's leading plain
 * segments are a fixed root, each later segment is matched against directory entries (`**`
 * walks everything below), results are absolute, sorted and without duplicates.
 */
import { posix } from "node:path";
import type { ExpandGlobOptions, WalkEntry } from "./types.js";
import { entryOf, walk, type Walkable } from "./walk.js";

export interface GlobSyntax {
  extended?: boolean;
  globstar?: boolean;
  caseInsensitive?: boolean;
}

const SPECIAL = /[\\^$.*+?()[\]{}|/]/g;

/** Whether a path segment has glob syntax in it. */
export function isGlob(segment: string): boolean {
  return /[*?[{]|[?*+@!]\(/.test(segment);
}

/**
 * A glob as an anchored RegExp over a path (`*` and `?` never cross a `/`): `[...]` and
 * `[!...]` classes, `{a,b}` alternatives, `**` as a whole segment for any number of
 * directories (with `globstar`), and extended globs `?(..)`, `*(..)`, `+(..)`, `@(..)`, `!(..)`.
 *
 * @example
 * globToRegExp("*.ts").test("mod.ts"); // true
 * globToRegExp("src/**\/*.{js,ts}").test("src/a/b/c.js"); // true
 */
export function globToRegExp(glob: string, { extended = true, globstar = true, caseInsensitive = false }: GlobSyntax = {}): RegExp {
  let out = "";
  const groups: string[] = []; // the closing text of each open ( or {
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    const next = glob[i + 1];
    if (c === "\\" && i + 1 < glob.length) {
      out += glob[++i]!.replace(SPECIAL, "\\$&");
    } else if (extended && "?*+@!".includes(c) && next === "(") {
      groups.push({ "?": ")?", "*": ")*", "+": ")+", "@": ")", "!": ")$)[^/]*" }[c]!);
      out += c === "!" ? "(?!(?:" : "(?:";
      i++;
    } else if (c === ")" && groups.length && !groups[groups.length - 1]!.startsWith("}")) {
      out += groups.pop()!;
    } else if (c === "|" && groups.length) {
      out += "|";
    } else if (c === "{") {
      groups.push("})");
      out += "(?:";
    } else if (c === "}" && groups.length && groups[groups.length - 1] === "})") {
      groups.pop();
      out += ")";
    } else if (c === "," && groups.length && groups[groups.length - 1] === "})") {
      out += "|";
    } else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end === -1) {
        out += "\\[";
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negated = body.startsWith("!") || body.startsWith("^");
      if (negated) body = body.slice(1);
      out += `[${negated ? "^/" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
      i = end;
    } else if (c === "*") {
      const prevSlash = i === 0 || glob[i - 1] === "/";
      let j = i;
      while (glob[j + 1] === "*") j++;
      const nextSlash = j + 1 === glob.length || glob[j + 1] === "/";
      if (globstar && j > i && prevSlash && nextSlash) {
        // A whole `**` segment: any number of directories, including none.
        out += "(?:[^/]*(?:/|$))*";
        if (glob[j + 1] === "/") j++;
      } else {
        out += "[^/]*";
      }
      i = j;
    } else if (c === "?") {
      out += "[^/]";
    } else {
      out += c.replace(SPECIAL, "\\$&");
    }
  }
  // An unclosed group closes at the end.
  for (const closer of groups.reverse()) out += closer === "})" ? ")" : closer;
  return new RegExp(`^${out}/*$`, caseInsensitive ? "i" : "");
}

const byPath = (a: WalkEntry, b: WalkEntry) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** Every entry matching `glob`, below `options.root` (default `cwd`) for a relative glob. */
export async function* expandGlob(fs: Walkable, glob: string, cwd: string, options: ExpandGlobOptions = {}): AsyncIterableIterator<WalkEntry> {
  const { exclude = [], includeDirs = true, extended = true, globstar = true, caseInsensitive = false, followSymlinks = false, canonicalize = true } = options;
  const syntax = { extended, globstar, caseInsensitive };
  const absolute = glob.startsWith("/");
  const hasTrailingSep = glob.length > 1 && glob.endsWith("/");
  const segments = glob.split("/").filter((s) => s !== "");
  // As std's: `exclude` resolves against `root` (default "/" for an absolute glob, else `cwd`).
  const root = options.root !== undefined ? posix.resolve(cwd, options.root) : absolute ? "/" : cwd;
  const excluded = exclude.map((p) => globToRegExp(posix.resolve(root, p), syntax));
  const keep = (path: string) => !excluded.some((r) => r.test(path));

  let fixed = absolute ? "/" : root;
  while (segments.length > 0 && !isGlob(segments[0]!)) fixed = posix.join(fixed, segments.shift()!);
  let current: WalkEntry[];
  try {
    current = [await entryOf(fs, fixed)];
  } catch (err) {
    if ((err as { errno?: string }).errno === "ENOENT") return;
    throw err;
  }

  async function* advance(from: WalkEntry, segment: string): AsyncIterable<WalkEntry> {
    if (!from.isDirectory) return;
    if (segment === "..") {
      const parent = posix.join(from.path, "..");
      if (keep(parent)) yield await entryOf(fs, parent);
      return;
    }
    if (segment === "**") {
      yield* walk(fs, from.path, { skip: excluded, maxDepth: globstar ? Infinity : 1, followSymlinks, canonicalize });
      return;
    }
    const pattern = globToRegExp(segment, syntax);
    for await (const entry of walk(fs, from.path, { maxDepth: 1, skip: excluded, followSymlinks })) {
      if (entry.path !== from.path && pattern.test(entry.name)) yield entry;
    }
  }

  for (const segment of segments) {
    const next = new Map<string, WalkEntry>();
    for (const from of current) for await (const entry of advance(from, segment)) next.set(entry.path, entry);
    current = [...next.values()].sort(byPath);
  }
  if (hasTrailingSep) current = current.filter((e) => e.isDirectory);
  if (!includeDirs) current = current.filter((e) => !e.isDirectory);
  yield* current;
}
