import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, closeSync } from "node:fs";
import { createRequire } from "node:module";
import { createConnection } from "node:net";
import { delimiter, dirname, join } from "node:path";
import { defaultStateDir } from "@sbx/protocol";
import { ConnectionError } from "./errors.js";

/** The `sbx` CLI to start: SBX_DAEMON_BIN, the caller's own @sbx/daemon, or `sbx` on PATH. */
function findDaemonCommand(): { file: string; args: string[] } | null {
  const env = process.env;
  const node = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? "node" : process.execPath;
  if (env.SBX_DAEMON_BIN) return env.SBX_DAEMON_BIN.endsWith(".js") ? { file: node, args: [env.SBX_DAEMON_BIN] } : { file: env.SBX_DAEMON_BIN, args: [] };
  for (const base of [join(process.cwd(), "noop.js"), import.meta.url]) {
    try {
      const pkg = createRequire(base).resolve("@sbx/daemon/package.json");
      const cli = join(dirname(pkg), "dist", "cli.js");
      if (existsSync(cli)) return { file: node, args: [cli] };
    } catch {}
  }
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, "sbx"))) return { file: join(dir, "sbx"), args: [] };
  }
  return null;
}

/** Whether something accepts TCP connections at a ws:// URL's host and port. */
export function isListening(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return listening(hostname.replace(/^\[|\]$/g, ""), Number(port) || 80);
}

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port }, () => (socket.destroy(), resolve(true)));
    socket.on("error", () => resolve(false));
  });
}

/**
 * Starts a daemon on this machine in the background, logging to its state dir, and waits
 * until it listens. It keeps running for later clients; `sbx daemon` in a terminal works too.
 */
export async function startLocalDaemon(url: string): Promise<void> {
  const { hostname, port } = new URL(url);
  const host = hostname.replace(/^\[|\]$/g, "");
  if (!["127.0.0.1", "localhost", "::1"].includes(host)) throw new ConnectionError(`no daemon at ${url}, and only a loopback daemon can be started automatically`);
  const cmd = findDaemonCommand();
  if (!cmd) throw new ConnectionError(`no sbx daemon listens at ${url} and the sbx CLI was not found to start one: install @sbx/daemon or run \`sbx daemon\``);
  const stateDir = defaultStateDir();
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const log = openSync(join(stateDir, "daemon.log"), "a", 0o600);
  try {
    const child = spawn(cmd.file, [...cmd.args, "daemon", "--listen", `${host.includes(":") ? `[${host}]` : host}:${port || 80}`], {
      detached: true,
      stdio: ["ignore", log, log],
    });
    child.unref();
    const deadline = Date.now() + 15_000;
    let exited: number | null = null;
    child.once("exit", (code) => (exited = code ?? 1));
    while (Date.now() < deadline) {
      if (await listening(host, Number(port))) return;
      if (exited !== null && !(await listening(host, Number(port)))) {
        throw new ConnectionError(`the local sbx daemon exited with code ${exited}; see ${join(stateDir, "daemon.log")}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new ConnectionError(`the local sbx daemon did not start listening on ${url} within 15s; see ${join(stateDir, "daemon.log")}`);
  } finally {
    closeSync(log);
  }
}
