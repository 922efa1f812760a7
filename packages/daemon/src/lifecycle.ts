import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * What a running daemon says about itself in its state dir, so `sbx daemon status|stop` (and a
 * second daemon that would take the same dir) can find it without a connection or a token.
 */
export interface DaemonInfo {
  pid: number;
  url: string;
  stateDir: string;
  version: string;
  startedAt: string;
  mode: "root" | "rootless";
  /** Root mode: the first and last host uid its sandboxes run as. */
  uids?: [number, number];
}

const PID_FILE = "daemon.pid";
const INFO_FILE = "daemon.json";
export const LOG_FILE = "daemon.log";

export const pidFile = (stateDir: string) => join(stateDir, PID_FILE);

/** Whether `pid` is alive and runs the sbx CLI (a recycled pid running something else is not a daemon). */
export function isDaemonProcess(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.includes("daemon") && argv.some((a) => /(^|\/)(sbx|cli\.js)$/.test(a));
  } catch {
    return false;
  }
}

/** The pid of the daemon that holds `stateDir`, if one is alive. */
export function daemonPid(stateDir: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile(stateDir), "utf8").trim());
  } catch {
    return null;
  }
  return pid !== process.pid && isDaemonProcess(pid) ? pid : null;
}

/** The running daemon of `stateDir` and what it wrote about itself once it listened (null while it starts). */
export function runningDaemon(stateDir: string): { pid: number; info: DaemonInfo | null } | null {
  const pid = daemonPid(stateDir);
  if (pid === null) return null;
  let info: DaemonInfo | null = null;
  try {
    const parsed = JSON.parse(readFileSync(join(stateDir, INFO_FILE), "utf8")) as DaemonInfo;
    if (parsed.pid === pid) info = parsed;
  } catch {
    // Not listening yet, or written by an older daemon.
  }
  return { pid, info };
}

/** Written once the daemon listens (atomically: a reader never sees half of it). */
export function writeDaemonInfo(info: DaemonInfo): void {
  const path = join(info.stateDir, INFO_FILE);
  writeFileSync(`${path}.tmp`, JSON.stringify(info, null, 2) + "\n", { mode: 0o644 });
  renameSync(`${path}.tmp`, path);
}

export function removeDaemonFiles(stateDir: string): void {
  for (const f of [INFO_FILE, PID_FILE]) rmSync(join(stateDir, f), { force: true });
}
