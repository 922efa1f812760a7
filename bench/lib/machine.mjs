// The machine and the code measured, for RESULTS.md's header.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";
import { ROOT, requireFromClient } from "./env.mjs";

export function machine() {
  let bwrapVersion = "?";
  try {
    bwrapVersion = execFileSync("bwrap", ["--version"], { encoding: "utf8" }).trim();
  } catch {}
  let bufferutil = "absent";
  try {
    requireFromClient.resolve("bufferutil");
    createRequire(requireFromClient.resolve("ws"))("bufferutil");
    bufferutil = "loaded";
  } catch {}
  let code = ROOT;
  try {
    const git = (...a) => execFileSync("git", ["-C", ROOT, ...a], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const dirty = git("status", "--porcelain", "--", "packages").split("\n").filter(Boolean).length;
    code = `${ROOT} at commit ${git("rev-parse", "--short", "HEAD")}${dirty ? ` with ${dirty} uncommitted changes under packages/` : ""}`;
  } catch {}
  if (process.env.BENCH_LABEL) code += ` (${process.env.BENCH_LABEL})`;
  return {
    code,
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? "?",
    memGiB: (totalmem() / 1024 ** 3).toFixed(1),
    node: process.version,
    bwrap: bwrapVersion,
    kernel: release(),
    bufferutil,
    loadStart: loadavg()[0].toFixed(2),
  };
}
