import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

export interface TestDaemon extends AsyncDisposable {
  url: string;
  token: string;
  stateDir: string;
  proc: ChildProcess;
  /** Root mode: the host uids its sandboxes run as, [first, last]. */
  uids: [number, number] | null;
  /** Everything the daemon wrote to stderr so far. */
  logs(): string;
  /** Everything the daemon wrote to stdout so far. */
  stdout(): string;
  /** Options for Sandbox.create/connect/list. */
  opts: { url: string; token: string };
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface DaemonOptions {
  /** Kept at the end; a fresh temporary one (removed at the end) unless given. */
  stateDir?: string;
  /** Written to a file beside the state dir and passed with --config. */
  config?: Record<string, unknown>;
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

/** Starts a real `sbx daemon` on a free port with its own state dir. */
export async function startDaemon(options: DaemonOptions = {}): Promise<TestDaemon> {
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), "sbx-test-"));
  const args = [CLI, "daemon", "--listen", "127.0.0.1:0", "--state-dir", stateDir, "--session-grace", "1s", ...(options.args ?? [])];
  let configFile: string | null = null;
  if (options.config) {
    configFile = join(stateDir, "..", `${stateDir.split("/").pop()}-config.json`);
    writeFileSync(configFile, JSON.stringify(options.config));
    args.push("--config", configFile);
  }
  const env = { ...process.env, ...options.env };
  delete env.SBX_TOKEN;
  delete env.SBX_URL;
  Object.assign(env, options.env);
  const proc = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env });
  let stderr = "";
  let stdout = "";
  proc.stderr!.on("data", (d) => (stderr += d));
  proc.stdout!.on("data", (d) => (stdout += d));
  const url = await waitForListening(proc, () => stderr);
  // Written before the daemon says it listens.
  const { uids } = JSON.parse(readFileSync(join(stateDir, "daemon.json"), "utf8")) as { uids?: [number, number] };
  const token = options.env?.SBX_TOKEN ?? readFileSync(join(stateDir, "token"), "utf8").trim();
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill(signal);
    await exited;
  };
  return {
    url,
    token,
    stateDir,
    proc,
    uids: uids ?? null,
    opts: { url, token },
    logs: () => stderr,
    stdout: () => stdout,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
      if (!options.stateDir) await removeStateDir(stateDir);
      if (configFile) rmSync(configFile, { force: true });
    },
  };
}

/** Host pids of every live (non-zombie) process whose real uid is in [from, to]: a daemon's sandbox uids (`daemon.uids`). */
export function sandboxHostPids([from, to]: [number, number]): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      if (uid >= from && uid <= to && !/^State:\s+Z/m.test(status)) out.push(Number(entry));
    } catch {}
  }
  return out;
}

/** The URL a daemon prints once it listens; rejects (with its stderr) if it exits first. */
export function waitForListening(proc: ChildProcess, stderr: () => string = () => ""): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (ws:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    // "close", not "exit": the daemon's last words (why it stopped) are read by then.
    proc.once("close", (code) => reject(new Error(`daemon exited with ${code}: ${stderr()}`)));
  });
}

/**
 * Removes a test daemon's state dir. After a SIGKILL the daemon's reaper detaches its storage
 * mounts; a mount started at the very moment of the kill can land after that, so whatever is
 * still mounted below the dir is detached here before removing it.
 */
export async function removeStateDir(stateDir: string): Promise<void> {
  const mounted = () =>
    readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[4] ?? "")
      .filter((p) => p.startsWith(`${stateDir}/`));
  for (let i = 0; i < 50 && mounted().length > 0; i++) await new Promise((r) => setTimeout(r, 30));
  for (const p of mounted().reverse()) spawnSync("umount", ["--lazy", p]);
  rmSync(stateDir, { recursive: true, force: true });
}
