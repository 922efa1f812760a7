// The sync ergonomic layer, derived from the hand-written async one.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { HEADER } from "./python.mjs";

/**
 * The sync ergonomic layer is the async one with the async keywords removed (the unasync
 * approach httpcore uses): one hand-written description, two flavours that cannot drift.
 */
export function unasync(src) {
  return src
    .replace(/^# .*hand-written.*\n/m, "")
    .replace(/\basync def\b/g, "def")
    .replace(/\basync with\b/g, "with")
    .replace(/\basync for\b/g, "for")
    .replace(/\bawait /g, "")
    .replace(/__aenter__/g, "__enter__")
    .replace(/__aexit__/g, "__exit__")
    .replace(/__aiter__/g, "__iter__")
    .replace(/__anext__/g, "__next__")
    .replace(/StopAsyncIteration/g, "StopIteration")
    .replace(/\bAsync([A-Z]\w*)/g, "$1")
    .replace(/\baclose\b/g, "close")
    .replace(/\bAwaitable\[([^\]]*)\]/g, "$1")
    .replace(/^( *)# unasync: (.*)\n.*\n/gm, (_m, indent, repl) => `${indent}${repl}\n`);
}

// The transport is where the flavours really differ (a reader task or pumping waiters): each is written by hand.
const HAND_WRITTEN_BOTH = new Set(["transport.py"]);

/** The generated sync modules, by path: every module of `<pkg>/_async` but the transport. */
export function syncLayer(pkg) {
  const files = new Map();
  const asyncDir = join(pkg, "_async");
  for (const f of readdirSync(asyncDir).sort()) {
    if (!f.endsWith(".py") || HAND_WRITTEN_BOTH.has(f)) continue;
    files.set(join(pkg, "_sync", f), `${HEADER}\n# (from sbx/_async/${f})\n${unasync(readFileSync(join(asyncDir, f), "utf8"))}`);
  }
  return files;
}
