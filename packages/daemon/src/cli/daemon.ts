import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { applyConfigFile, defaultConfig, parseListenAs, parseLogFormat, type DaemonConfig } from "../config.js";
import { Daemon, HostNotReadyError } from "../daemon.js";
import { isDaemonProcess, LOG_FILE, runningDaemon } from "../lifecycle.js";
import { createLogger } from "../util/log.js";
import { parseDuration } from "../util/units.js";
import { tuneHeapForStreams } from "../util/heap.js";
import { ResolveMap } from "../egress/policy/resolve-map.js";
import { idPrefixOf } from "../fleet/host-state.js";
import { parse, UsageError } from "./args.js";
import { CliError } from "./errors.js";
import { drainCommand, FLEET_HELP, readyCommand } from "./fleet-commands.js";

export const DAEMON_HELP = `sbx daemon [--listen 127.0.0.1:7070] [--state-dir DIR] [--config FILE] [--session-grace 5s] [--warm-pool 2] [--resolve NAME[:PORT]=ADDR[:PORT]]... [--extra-ca FILE]... [--id-prefix NAME] [--quiet]
           [--metrics HOST:PORT] [--log-format text|json]
  Runs the daemon in the foreground. Port 0 picks a free port; the line
  "sbx daemon listening on ws://HOST:PORT" on stdout says which.
sbx daemon start [same options]         Starts it in the background (log: daemon.log in the state dir).
sbx daemon status [--state-dir DIR]     Says whether a daemon runs for the state dir, where it listens, its pid.
sbx daemon stop [--state-dir DIR] [--timeout 30s] [--force]
                                        Stops it (its sandboxes are destroyed); --force: SIGKILL after the timeout.
${FLEET_HELP}`;

const OPTIONS = {
  listen: { type: "string" },
  "state-dir": { type: "string" },
  config: { type: "string" },
  "session-grace": { type: "string" },
  "warm-pool": { type: "string" },
  resolve: { type: "string", multiple: true },
  "extra-ca": { type: "string", multiple: true },
  "id-prefix": { type: "string" },
  quiet: { type: "boolean" },
  metrics: { type: "string" },
  "log-format": { type: "string" },
} as const;

const SUBCOMMANDS: Record<string, (args: string[]) => Promise<number>> = { start: startCommand, status: statusCommand, stop: stopCommand, drain: drainCommand, ready: readyCommand };

/** `sbx daemon [start|status|stop] ...`; without a subcommand the daemon runs in the foreground. */
export async function daemonCommand(args: string[]): Promise<number> {
  const sub = args[0] && !args[0].startsWith("-") ? SUBCOMMANDS[args[0]] : undefined;
  if (args[0] && !args[0].startsWith("-") && !sub) throw new UsageError(`unknown subcommand '${args[0]}' (known: ${Object.keys(SUBCOMMANDS).join(", ")}; none runs the daemon in the foreground)`);
  if (sub) return sub(args.slice(1));
  return runForeground(args);
}

/** A config file's mistakes are the user's to fix: one line naming the file and the key. */
function readConfigFile(config: DaemonConfig, path: string): void {
  try {
    applyConfigFile(config, path);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

/** A duration flag's value in ms; a malformed one is a usage error naming the flag. */
export function flagDuration(flag: string, value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}

function configOf(args: string[]): { config: DaemonConfig; quiet: boolean } {
  const { values } = parse(args, OPTIONS, false);
  const config = defaultConfig();
  if (values.config) readConfigFile(config, values.config);
  if (values.listen) config.listen = values.listen;
  if (values["state-dir"]) config.stateDir = values["state-dir"];
  if (values["session-grace"]) config.sessionGraceMs = flagDuration("--session-grace", values["session-grace"]);
  if (values["id-prefix"]) {
    try {
      config.idPrefix = idPrefixOf(values["id-prefix"]);
    } catch (err) {
      throw new UsageError(`--id-prefix: ${(err as Error).message}`);
    }
  }
  // Like curl, each --resolve adds a pin (and wins over the config file's for the same name).
  if (values.resolve?.length) {
    try {
      config.egressPins = config.egressPins.merge(ResolveMap.fromFlags(values.resolve));
    } catch (err) {
      throw new UsageError(`--resolve: ${(err as Error).message}`);
    }
  }
  // Extra CAs add up: the config file's and every --extra-ca.
  if (values["extra-ca"]?.length) config.extraCaCerts = [...config.extraCaCerts, ...values["extra-ca"]];
  if (values["warm-pool"] !== undefined) {
    const n = Number(values["warm-pool"]);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--warm-pool expects a whole number, got '${values["warm-pool"]}'`);
    config.warmPool = n;
  }
  if (values.metrics !== undefined) {
    try {
      parseListenAs("--metrics", values.metrics);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    config.metricsListen = values.metrics;
  }
  if (values["log-format"] !== undefined) {
    try {
      config.logFormat = parseLogFormat(values["log-format"], "--log-format");
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  return { config, quiet: values.quiet ?? false };
}

async function runForeground(args: string[]): Promise<number> {
  const { config, quiet } = configOf(args);
  const log = createLogger(undefined, quiet, config.logFormat);
  tuneHeapForStreams();
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, { log });
  } catch (err) {
    process.stderr.write(`sbx daemon: ${(err as Error).message}\n`);
    return err instanceof HostNotReadyError ? 3 : 1;
  }
  process.stdout.write(`sbx daemon listening on ${daemon.url}\n`);
  if (daemon.tokenPath) process.stdout.write(`token file: ${daemon.tokenPath}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await daemon.close();
  return 0;
}

/** The state dir the other subcommands act on: --state-dir, the config file's, or the default. */
function stateDirOf(args: string[], extra: Parameters<typeof parse>[1] = {}): { stateDir: string; values: Record<string, any> } {
  const { values } = parse(args, { "state-dir": { type: "string" }, config: { type: "string" }, ...extra }, false);
  return { stateDir: stateDirFrom(values), values };
}

/** The state dir named by parsed `--state-dir` or `--config`, else the default one. */
export function stateDirFrom(values: { "state-dir"?: string; config?: string }): string {
  if (values["state-dir"]) return values["state-dir"];
  const config = defaultConfig();
  if (values.config) readConfigFile(config, values.config);
  return config.stateDir;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How a background start went: started (or found already running), or why not. */
export type BackgroundStart =
  | { ok: true; already: boolean; pid: number; url: string | null; stateDir: string; logPath: string }
  | { ok: false; message: string };

/** Starts the daemon detached from this terminal, logging to its state dir, and waits until it listens. */
export async function startInBackground(args: string[]): Promise<BackgroundStart> {
  const { config } = configOf(args);
  const logPath = join(config.stateDir, LOG_FILE);
  const running = runningDaemon(config.stateDir);
  if (running) return { ok: true, already: true, pid: running.pid, url: running.info?.url ?? null, stateDir: config.stateDir, logPath };
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const log = openSync(logPath, "a", 0o600);
  // The same CLI, in the foreground, detached from this terminal.
  const child = spawn(process.execPath, [process.argv[1]!, "daemon", ...args], { detached: true, stdio: ["ignore", log, log] });
  closeSync(log);
  child.unref();
  let exited: number | null = null;
  child.once("exit", (code) => (exited = code ?? 1));
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(50)) {
    const info = runningDaemon(config.stateDir)?.info;
    if (info && info.pid === child.pid) return { ok: true, already: false, pid: info.pid, url: info.url, stateDir: config.stateDir, logPath };
    if (exited !== null) return { ok: false, message: `the daemon exited with code ${exited}; see ${logPath}` };
  }
  return { ok: false, message: `the daemon (pid ${child.pid}) did not start listening within 30s; see ${logPath}` };
}

/** `sbx daemon stop`, with --state-dir when the state dir is not the default one. */
export function stopHint(stateDir: string): string {
  return `sbx daemon stop${stateDir === defaultConfig().stateDir ? "" : ` --state-dir ${stateDir}`}`;
}

async function startCommand(args: string[]): Promise<number> {
  const started = await startInBackground(args);
  if (!started.ok) {
    process.stderr.write(`sbx daemon start: ${started.message}\n`);
    return 1;
  }
  const { pid, url, stateDir, logPath } = started;
  if (started.already) {
    process.stdout.write(`an sbx daemon already runs for ${stateDir} (pid ${pid}${url ? `, ${url}` : ""})\n`);
    return 0;
  }
  process.stdout.write(`sbx daemon started (pid ${pid}), listening on ${url}\nlog: ${logPath}\nstop it with: ${stopHint(stateDir)}\n`);
  return 0;
}

async function statusCommand(args: string[]): Promise<number> {
  const { stateDir } = stateDirOf(args);
  const running = runningDaemon(stateDir);
  if (!running) {
    process.stdout.write(`no sbx daemon runs for ${stateDir}\n`);
    // LSB's "program is not running".
    return 3;
  }
  const { pid, info } = running;
  if (!info) {
    process.stdout.write(`an sbx daemon (pid ${pid}) is starting for ${stateDir}\n`);
    return 0;
  }
  const up = Math.round((Date.now() - Date.parse(info.startedAt)) / 1000);
  process.stdout.write(
    [
      `sbx daemon ${info.version} running (pid ${pid}, ${info.mode} mode, up ${up}s)`,
      `listening on ${info.url}`,
      `state dir ${stateDir}`,
      `log ${join(stateDir, LOG_FILE)} (when started in the background)`,
    ].join("\n") + "\n",
  );
  return 0;
}

async function stopCommand(args: string[]): Promise<number> {
  const { stateDir, values } = stateDirOf(args, { timeout: { type: "string" }, force: { type: "boolean" } });
  const timeoutMs = values.timeout ? flagDuration("--timeout", values.timeout) : 30_000;
  const running = runningDaemon(stateDir);
  if (!running) {
    process.stdout.write(`no sbx daemon runs for ${stateDir}\n`);
    return 0;
  }
  const { pid } = running;
  try {
    process.kill(pid, "SIGTERM");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ESRCH") return 0;
    throw new UsageError(code === "EPERM" ? `the daemon (pid ${pid}) belongs to another user; stop it as that user (or root)` : (err as Error).message);
  }
  // It destroys its sandboxes and detaches their storage before it exits.
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(50)) {
    if (!isDaemonProcess(pid)) {
      process.stdout.write(`stopped the sbx daemon (pid ${pid}) of ${stateDir}\n`);
      return 0;
    }
  }
  if (!values.force) {
    process.stderr.write(`sbx daemon stop: the daemon (pid ${pid}) did not exit within ${timeoutMs / 1000}s; --force kills it (its reaper then cleans up)\n`);
    return 1;
  }
  process.kill(pid, "SIGKILL");
  for (let i = 0; i < 100 && isDaemonProcess(pid); i++) await sleep(50);
  process.stdout.write(`killed the sbx daemon (pid ${pid}) of ${stateDir}\n`);
  return 0;
}
