import { execFile, spawn, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import { constants as osConstants } from "node:os";
import { promisify } from "node:util";

/** What a host tool printed. */
export interface ToolOutput {
  stdout: string;
  stderr: string;
}

export interface ToolOptions {
  /** Most bytes of stdout, and of stderr, kept; a tool printing more is killed and the call fails (execFile's maxBuffer). Default 1 MiB. */
  maxBuffer?: number;
}

/** A failed tool run, shaped as Node's execFile error: `code` is the exit status (or the errno name when it could not start). */
export interface ToolError extends Error {
  code?: number | string;
  signal?: string | null;
  stdout: string;
  stderr: string;
  cmd: string;
}

const DEFAULT_MAX_BUFFER = 1 << 20;
/** The most a request to sbx-run may hold (its MAX_REQUEST): id, limit and the argv. */
const MAX_REQUEST = 1 << 20;
/** Tools running at once; more wait their turn here (sbx-run refuses past its MAX_JOBS, 512). */
const MAX_IN_FLIGHT = 256;
const KIND = { exited: 0, signaled: 1, notStarted: 2, tooMuchOutput: 3 } as const;

const errnoName = (n: number) => Object.entries(osConstants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
const signalName = (n: number) => Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;

function toolError(cmd: string, args: readonly string[], message: string, fields: Partial<ToolError> & ToolOutput): ToolError {
  const line = [cmd, ...args].join(" ");
  return Object.assign(new Error(`Command failed: ${line}\n${message}`), { cmd: line, ...fields });
}

interface Pending {
  /** The runner it was sent to: only that one's death fails it. */
  child: ChildProcess;
  cmd: string;
  args: readonly string[];
  resolve: (out: ToolOutput) => void;
  reject: (err: ToolError) => void;
}

/**
 * Runs host tools (mkfs.ext4, mount, umount, losetup...) through `sbx-run` (native/run.c), one
 * small process the daemon starts once: a fork of the daemon itself copies the page tables of
 * its whole address space and holds the event loop until the child has exec'd, 1-4 ms each on a
 * loaded host and four or five per sandbox. Calls resolve and fail as `execFile`'s do. The
 * runner is started on the first call and again after it died (its calls in flight fail).
 */
export class ToolRunner {
  private child: ChildProcess | null = null;
  private readonly pending = new Map<number, Pending>();
  /** Calls waiting for one of MAX_IN_FLIGHT to finish (a shutdown unmounting a thousand sandboxes at once, say). */
  private readonly queued: Array<() => void> = [];
  private nextId = 1;
  private input: Buffer = Buffer.alloc(0);

  constructor(readonly path: string) {}

  async run(cmd: string, args: readonly string[], opts: ToolOptions = {}): Promise<ToolOutput> {
    const argv = [cmd, ...args];
    if (argv.some((a) => a.includes("\0"))) throw toolError(cmd, args, "an argument holds a NUL byte", { stdout: "", stderr: "" });
    const strings = Buffer.from(argv.map((a) => `${a}\0`).join(""), "utf8");
    if (8 + strings.length > MAX_REQUEST) throw toolError(cmd, args, `its arguments come to ${strings.length} bytes, more than the tool runner takes`, { stdout: "", stderr: "" });
    while (this.pending.size >= MAX_IN_FLIGHT) await new Promise<void>((r) => this.queued.push(r));
    const child = this.child ?? this.start();
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffffffff) + 1;
    const head = Buffer.alloc(12);
    head.writeUInt32BE(8 + strings.length, 0);
    head.writeUInt32BE(id, 4);
    head.writeUInt32BE(Math.min(opts.maxBuffer ?? DEFAULT_MAX_BUFFER, 0xffffffff), 8);
    return new Promise<ToolOutput>((resolve, reject) => {
      this.pending.set(id, { child, cmd, args, resolve, reject });
      this.hold(true);
      child.stdin!.write(Buffer.concat([head, strings]));
    });
  }

  /** `id` answered or failed: the next waiting call may go. */
  private settled(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    this.queued.shift()?.();
    return p;
  }

  private start(): ChildProcess {
    const child = spawn(this.path, [], { stdio: ["pipe", "pipe", "inherit"] });
    this.child = child;
    this.input = Buffer.alloc(0);
    child.stdin!.on("error", () => {});
    child.stdout!.on("data", (chunk: Buffer) => this.onData(chunk));
    const gone = (why: string) => {
      if (this.child === child) this.child = null;
      for (const [id, p] of this.pending) if (p.child === child) this.settled(id)!.reject(toolError(p.cmd, p.args, `the daemon's tool runner (${this.path}) ${why}`, { stdout: "", stderr: "" }));
      this.hold(false);
    };
    child.on("error", (err) => gone(`could not run: ${err.message}`));
    child.on("exit", (code, signal) => gone(signal ? `was killed by ${signal}` : `exited with status ${code}`));
    this.hold(false);
    return child;
  }

  /** The runner keeps the daemon alive only while a call waits on it, as execFile's children do. */
  private hold(busy: boolean): void {
    const child = this.child;
    if (!child) return;
    const on = busy || this.pending.size > 0;
    const sockets = [child.stdin, child.stdout] as Array<Socket | null>;
    if (on) child.ref(), sockets.forEach((s) => s?.ref());
    else child.unref(), sockets.forEach((s) => s?.unref());
  }

  private onData(chunk: Buffer): void {
    this.input = this.input.length ? Buffer.concat([this.input, chunk]) : chunk;
    while (this.input.length >= 4) {
      const len = this.input.readUInt32BE(0);
      if (this.input.length < 4 + len) break;
      this.onReply(this.input.subarray(4, 4 + len));
      this.input = this.input.subarray(4 + len);
    }
    this.hold(false);
  }

  private onReply(r: Buffer): void {
    const id = r.readUInt32BE(0);
    const kind = r.readUInt32BE(4);
    const value = r.readInt32BE(8);
    const outLen = r.readUInt32BE(12);
    const stdout = r.subarray(16, 16 + outLen).toString("utf8");
    const stderr = r.subarray(20 + outLen, 20 + outLen + r.readUInt32BE(16 + outLen)).toString("utf8");
    const p = this.settled(id);
    if (!p) return;
    const { cmd, args } = p;
    if (kind === KIND.exited && value === 0) return p.resolve({ stdout, stderr });
    if (kind === KIND.exited) return p.reject(toolError(cmd, args, stderr, { code: value, signal: null, stdout, stderr }));
    if (kind === KIND.signaled) return p.reject(toolError(cmd, args, stderr, { signal: signalName(value), stdout, stderr }));
    if (kind === KIND.notStarted) return p.reject(toolError(cmd, args, `${errnoName(value)}: could not start ${cmd}`, { code: errnoName(value), stdout, stderr }));
    p.reject(toolError(cmd, args, `${value === 1 ? "stdout" : "stderr"} maxBuffer length exceeded`, { code: "ERR_CHILD_PROCESS_STDIO_MAXBUFFER", signal: "SIGKILL", stdout, stderr }));
  }
}

const execFileAsync = promisify(execFile);
let runner: ToolRunner | null = null;

/**
 * Sends every later runTool call in this process through the runner at `path` (the daemon, at
 * start; daemons in one process share it); null: back to execFile. The runner keeps no process
 * alive while idle, so nothing needs to stop it: it ends when its stdin closes.
 */
export function useToolRunner(path: string | null): void {
  if (path === null) runner = null;
  else if (runner?.path !== path) runner = new ToolRunner(path);
}

/**
 * Runs a host tool to its end: through the daemon's runner when it has one, else (tests, the
 * CLI's own commands) with execFile. Fails with the tool's stderr in its message.
 */
export async function runTool(cmd: string, args: readonly string[], opts: ToolOptions = {}): Promise<ToolOutput> {
  if (runner) return runner.run(cmd, args, opts);
  const { stdout, stderr } = await execFileAsync(cmd, args as string[], { maxBuffer: opts.maxBuffer ?? DEFAULT_MAX_BUFFER, encoding: "utf8" });
  return { stdout, stderr };
}
