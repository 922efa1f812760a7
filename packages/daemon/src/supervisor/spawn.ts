import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, resolve } from "node:path";
import type { SignalName } from "@sbx/protocol";
import { CallError } from "./errors.js";
import type { InStream, OutStream } from "./link.js";

export const HOME = "/home/user";
const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin";

export interface SpawnRequest {
  cmd: string;
  args?: string[];
  cwd?: string;
  env: Record<string, string>;
  stdin: InStream | null;
  stdout: OutStream | null;
  stderr: OutStream | null;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Finds the program the way execvp would, so a missing command is a clear error, not a hang. */
function resolveCommand(cmd: string, cwd: string, env: Record<string, string>): string {
  if (cmd.includes("/")) {
    const path = isAbsolute(cmd) ? cmd : resolve(cwd, cmd);
    try {
      statSync(path);
    } catch {
      throw new CallError("SpawnFailed", `cannot run '${cmd}': no such file`, "ENOENT");
    }
    if (!isExecutableFile(path)) throw new CallError("SpawnFailed", `cannot run '${cmd}': not an executable file`, "EACCES");
    return path;
  }
  for (const dir of (env.PATH ?? DEFAULT_PATH).split(delimiter)) {
    if (!dir) continue;
    const path = resolve(cwd, dir, cmd);
    if (isExecutableFile(path)) return path;
  }
  throw new CallError("SpawnFailed", `command not found: '${cmd}' (searched PATH=${env.PATH ?? DEFAULT_PATH})`, "ENOENT");
}

function resolveCwd(cwd: string | undefined): string {
  const dir = cwd ? resolve(HOME, cwd) : HOME;
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new CallError("SpawnFailed", `working directory '${dir}' does not exist`, "ENOENT");
  }
  if (!isDir) throw new CallError("SpawnFailed", `working directory '${dir}' is not a directory`, "ENOTDIR");
  return dir;
}

/** Starts a process with its stdio wired to channel streams; resolves once it is running. */
export function startProcess(req: SpawnRequest): Promise<ChildProcess> {
  const cwd = resolveCwd(req.cwd);
  const file = resolveCommand(req.cmd, cwd, req.env);
  const child = spawn(file, req.args ?? [], {
    argv0: req.cmd,
    cwd,
    env: req.env,
    stdio: [req.stdin ? "pipe" : "ignore", req.stdout ? "pipe" : "ignore", req.stderr ? "pipe" : "ignore"],
  });
  return new Promise((resolvePromise, reject) => {
    child.once("error", (err: NodeJS.ErrnoException) => {
      req.stdin?.fail(err.message);
      req.stdout?.fail(err.message);
      req.stderr?.fail(err.message);
      reject(new CallError("SpawnFailed", `cannot run '${req.cmd}': ${err.message}`, err.code));
    });
    child.once("spawn", () => {
      if (req.stdin && child.stdin) req.stdin.attach(child.stdin);
      if (req.stdout && child.stdout) req.stdout.attach(child.stdout);
      if (req.stderr && child.stderr) req.stderr.attach(child.stderr);
      resolvePromise(child);
    });
  });
}

export function killProcess(children: Map<number, ChildProcess>, pid: number, signal: SignalName): void {
  const child = children.get(pid);
  if (!child) throw new CallError("ProcessNotFound", `no running process with pid ${pid}`);
  try {
    process.kill(pid, signal);
  } catch (err) {
    throw new CallError("ProcessNotFound", `cannot signal pid ${pid}: ${(err as Error).message}`);
  }
}

