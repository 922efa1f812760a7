import { homedir } from "node:os";
import { join } from "node:path";

export const DEFAULT_URL = "ws://127.0.0.1:7070";

/** The daemon's state dir: /var/lib/sbx as root, $XDG_STATE_HOME/sbx otherwise. */
export function defaultStateDir(env: Record<string, string | undefined> = process.env): string {
  if (env.SBX_STATE_DIR) return env.SBX_STATE_DIR;
  if (typeof process.getuid === "function" && process.getuid() === 0) return "/var/lib/sbx";
  const base = env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(base, "sbx");
}

export const TOKEN_FILE = "token";
