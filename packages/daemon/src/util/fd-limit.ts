import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** This process's RLIMIT_NOFILE, as /proc/self/limits states it. */
export function openFileLimit(): { soft: number; hard: number } {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  const read = (v: string | undefined) => (v === undefined || v === "unlimited" ? Infinity : Number(v));
  return { soft: read(line?.[1]), hard: read(line?.[2]) };
}

/**
 * Raises the daemon's soft open-file limit to its hard limit (what systemd and shells leave at
 * 1024 is far too few for hundreds of sandboxes' proxies). Node has no setrlimit; prlimit(1),
 * which the daemon requires anyway, sets it on our own pid. Returns the limit in force.
 */
export function raiseOpenFileLimit(): number {
  const { soft, hard } = openFileLimit();
  if (soft < hard && Number.isFinite(hard)) spawnSync("prlimit", ["--pid", String(process.pid), `--nofile=${hard}:${hard}`], { stdio: "ignore" });
  return openFileLimit().soft;
}

/** Descriptors kept out of the sandboxes' proxies' reach: the API listener and its clients, cgroup and storage files, logs. */
export const FD_RESERVE = 1024;
