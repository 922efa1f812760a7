/**
 * Stateful REPLs (Deno, Python) inside a sandbox. The daemon starts the driver (drivers/) with a
 * private pipe pair on its fds 3 and 4 and speaks JSON lines on it; the user's code prints on
 * stdout and stderr, which go to the client like any process's, so nothing it prints can pass for
 * a reply. Whatever comes back on the pipe is hostile input: bounded, parsed, checked against
 * the protocol's shape, and a driver that breaks the rules is killed.
 */
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { parseDuration, schemas, type ResultOf } from "@sbx/protocol";
import { DaemonError } from "../util/errors.js";
import { SandboxDuplex } from "../streams/sandbox-duplex.js";

export type ReplResult = ResultOf<"repl.eval">;
export type ReplLanguage = "deno" | "python";

const checkResult = TypeCompiler.Compile(schemas.ReplResult);
/** A reply may carry a 16 MiB value plus captured output (1 MiB each) and its framing. */
const MAX_REPLY = 20 << 20;
/** How long a driver may take to say it is ready. */
const READY_MS = 30_000;
/** How long past a call's own timeout a Python driver may take to report the interrupt before it is killed. */
const INTERRUPT_GRACE_MS = 5_000;
/** REPLs one sandbox may hold at once (each costs the daemon a pipe pair and a reply buffer). */
export const MAX_REPLS = 16;

interface Waiting {
  resolve: (r: ReplResult) => void;
  reject: (e: Error) => void;
}

/** The call's timeout in milliseconds, or null: a number of milliseconds or a duration string. */
export function timeoutMs(t: number | string | undefined): number | null {
  if (t === undefined) return null;
  return typeof t === "number" ? t : parseDuration(t);
}

/** One REPL: its process and the request/reply pipe to its driver. */
export class Repl {
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private closedReason: string | null = null;
  private ready: Waiting | null = null;

  constructor(
    readonly language: ReplLanguage,
    readonly pipe: SandboxDuplex,
    private readonly kill: () => void,
  ) {
    pipe.on("data", (chunk: Buffer) => this.onData(chunk));
    pipe.on("end", () => this.closed("the REPL exited"));
    pipe.on("error", (err) => this.closed(`the REPL's pipe failed: ${err.message}`));
    pipe.on("close", () => this.closed("the REPL exited"));
  }

  /** The pid, set once the spawn answered. */
  pid = 0;

  /** Resolves once the driver said it is ready; rejects (and kills it) after READY_MS. */
  whenReady(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fatal(`the ${this.language} REPL did not start within ${READY_MS / 1000} s`), READY_MS);
      this.ready = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }

  get isClosed(): boolean {
    return this.closedReason !== null;
  }

  /**
   * Sends one request and waits for its reply. With a timeout, Python interrupts the code itself
   * (the driver's timer) and keeps the session; Deno cannot interrupt running JavaScript, so its
   * REPL is ended and the call answers TimeoutError.
   */
  request(req: { op: "eval"; code: string } | { op: "call"; fn: string; args: unknown[] }, timeout: number | null): Promise<ReplResult> {
    if (this.closedReason) return Promise.reject(new DaemonError("ProcessNotFound", `REPL ${this.pid}: ${this.closedReason}`));
    const id = this.nextId++;
    const line = JSON.stringify({ id, ...req, ...(timeout !== null && this.language === "python" ? { timeout } : {}) }) + "\n";
    return new Promise<ReplResult>((resolve, reject) => {
      let timer: NodeJS.Timeout | null = null;
      const settle = () => timer && clearTimeout(timer);
      this.waiting.set(id, { resolve: (r) => (settle(), resolve(r)), reject: (e) => (settle(), reject(e)) });
      if (timeout !== null) {
        const limit = this.language === "python" ? timeout + INTERRUPT_GRACE_MS : timeout;
        timer = setTimeout(() => {
          const w = this.waiting.get(id);
          if (!w) return;
          this.waiting.delete(id);
          w.resolve({ ok: false, error: { type: "TimeoutError", message: `the call ran past its timeout of ${timeout} ms; the ${this.language} REPL was ended (its state is lost)`, traceback: "" }, stdout: "", stderr: "" });
          this.fatal(`a call ran past its timeout of ${timeout} ms`);
        }, limit);
      }
      this.pipe.write(line);
    });
  }

  /** Ends the REPL: its input closes (the driver exits) and the process is killed. */
  close(reason = "closed"): void {
    this.closed(`the REPL was ${reason}`);
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      this.buffered.push(chunk.subarray(start, nl));
      const line = Buffer.concat(this.buffered);
      this.buffered = [];
      this.bufferedBytes = 0;
      start = nl + 1;
      this.onLine(line);
      if (this.closedReason) return;
    }
    if (start < chunk.length) {
      this.bufferedBytes += chunk.length - start;
      if (this.bufferedBytes > MAX_REPLY) return this.fatal(`the driver sent a reply longer than ${MAX_REPLY} bytes`);
      this.buffered.push(chunk.subarray(start));
    }
  }

  private onLine(line: Buffer): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line.toString("utf8"));
    } catch {
      return this.fatal("the driver sent a line that is not JSON");
    }
    if (this.ready) {
      if ((msg as { t?: unknown })?.t !== "ready") return this.fatal("the driver did not start with its ready line");
      this.ready.resolve(undefined as never);
      this.ready = null;
      return;
    }
    const { id, ...result } = (msg ?? {}) as { id?: unknown };
    const w = typeof id === "number" ? this.waiting.get(id) : undefined;
    if (!w || !checkResult.Check(result)) return this.fatal("the driver sent a reply of the wrong shape or to no request");
    this.waiting.delete(id as number);
    w.resolve(result as ReplResult);
  }

  /** The driver broke the rules (or ran out of time): it is killed. */
  private fatal(reason: string): void {
    this.closed(`the REPL was ended: ${reason}`);
  }

  private closed(reason: string): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    const err = new DaemonError("ProcessNotFound", `REPL ${this.pid || "(starting)"}: ${reason}`);
    this.ready?.reject(err);
    this.ready = null;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    this.pipe.destroy();
    this.kill();
  }
}

/** A sandbox's REPLs by pid. */
export class ReplTable {
  private readonly repls = new Map<number, Repl>();

  get size(): number {
    return this.repls.size;
  }

  add(repl: Repl): void {
    this.repls.set(repl.pid, repl);
    repl.pipe.on("close", () => this.repls.get(repl.pid) === repl && this.repls.delete(repl.pid));
  }

  get(pid: number): Repl {
    const repl = this.repls.get(pid);
    if (!repl || repl.isClosed) throw new DaemonError("ProcessNotFound", `no running REPL with pid ${pid} in this sandbox`);
    return repl;
  }
}

/** The command that starts a driver, as the supervisor's spawn takes it. */
export function driverCommand(language: ReplLanguage, paths: { deno: string | null; denoDriver: string; pythonDriver: string }, args: string[]): { cmd: string; args: string[] } {
  if (language === "python") return { cmd: "python3", args: ["-u", paths.pythonDriver, ...args] };
  if (!paths.deno) throw new DaemonError("SpawnFailed", "this daemon's sandboxes have no Deno (config deno: false, or no deno npm package beside the daemon)");
  // -A: Deno's permissions inside are the sandbox's business; the sandbox itself is the boundary.
  return { cmd: paths.deno, args: ["run", "-A", "--quiet", "--no-config", paths.denoDriver, ...args] };
}

