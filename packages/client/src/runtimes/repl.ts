/**
 * What the Deno and Python REPLs share: a process in the sandbox (a ChildProcess, whose exit and
 * output work as any spawn's) whose driver the daemon talks to for `eval` and `call`.
 */
import { ErrorCodes, type ParamsOf, type ResultOf } from "@sbx/protocol";
import { ChildProcess } from "../process.js";
import { RpcError, SandboxError } from "../errors.js";
import type { Stdio } from "../sandbox.js";
import { decodeValue } from "./value.js";
import { fetchProcess, waitForHttp } from "./http.js";

/** Options of `deno.repl()`, `python.repl()` and the one-shot `eval`s. */
export interface ReplOptions {
  /** Script arguments (`Deno.args`, `sys.argv[1:]`). */
  args?: string[];
  /** Working directory (default /home/user). */
  cwd?: string;
  /** Variables added to the sandbox's environment. */
  env?: Record<string, string>;
  /** Start from an empty environment instead of the sandbox's. */
  clearEnv?: boolean;
  /** What the REPL's code prints outside a captured call: "inherit" (default; copied to this process's), "piped" or "null". */
  stdout?: Stdio;
  stderr?: Stdio;
  /** Aborting sends SIGTERM to the REPL. */
  signal?: AbortSignal;
}

/** Options of one call. */
export interface CallOptions {
  /**
   * Interrupt the call after this long (milliseconds or "30s"). Python raises KeyboardInterrupt in
   * the code and the session goes on; Deno cannot interrupt running JavaScript, so its REPL ends.
   */
  timeout?: number | string;
}

/** @internal How a Sandbox starts a REPL and builds its handle. */
export type ReplStarter = <P>(language: "deno" | "python", options: ReplOptions, make: (...parts: ConstructorParameters<typeof ChildProcess>) => P) => Promise<P>;

/** What one call returned: the value, or the exception the code raised; and what it printed. */
export interface ReplOutput<T = unknown> {
  /** The value of the code's last expression (Python: null for None or a statement); undefined on error. */
  value: T;
  /** Python: repr() of the value (null for None); Deno: null. */
  repr: string | null;
  /** What the call printed (Python captures fds 1 and 2, child processes included; Deno: empty). */
  stdout: string;
  stderr: string;
  /** The exception, if the code raised one. */
  error: ReplError | null;
}

/** Code in a REPL raised an exception: its class name in `type`, the formatted stack in `traceback`. */
export class ReplError extends SandboxError {
  override readonly code = "REPL_ERROR";
  constructor(
    /** The exception's class: "ZeroDivisionError", "TypeError", "TimeoutError" (the call's timeout) ... */
    readonly type: string,
    message: string,
    /** Python's formatted traceback, or the JavaScript stack. */
    readonly traceback: string,
    readonly stdout = "",
    readonly stderr = "",
  ) {
    super(`${type}: ${message}`);
    this.name = "ReplError";
  }
}

/** A running REPL; state persists between calls until `close()`. */
export class Repl extends ChildProcess {
  #httpReady: Promise<boolean> | null = null;

  /** True once code in the REPL listens on a TCP port (Deno.serve, http.server in a thread ...); false if the REPL exits first. */
  get httpReady(): Promise<boolean> {
    return (this.#httpReady ??= waitForHttp(this.conn, this.sandbox, this.pid, this.status));
  }

  /** Sends a request to the server the REPL's code started (its first listening port); the URL's host is not used. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    return fetchProcess(this.conn, this.sandbox, this.pid, input, init);
  }

  /** Runs code and reports its value or exception with what it printed; never throws for the code's own errors. */
  protected async run<T>(method: "repl.eval" | "repl.call", params: Omit<ParamsOf<"repl.eval">, "sandbox" | "pid"> | Omit<ParamsOf<"repl.call">, "sandbox" | "pid">, options: CallOptions = {}): Promise<ReplOutput<T>> {
    const r: ResultOf<"repl.eval"> = await this.conn.request(method, { sandbox: this.sandbox, pid: this.pid, ...params, ...(options.timeout !== undefined ? { timeout: options.timeout } : {}) } as never);
    if (!r.ok) return { value: undefined as T, repr: null, stdout: r.stdout, stderr: r.stderr, error: this.toError(r.error ?? { type: "Error", message: "the REPL reported a failure without saying what", traceback: "" }, r.stdout, r.stderr) };
    return { value: decodeValue(r.value) as T, repr: r.repr ?? null, stdout: r.stdout, stderr: r.stderr, error: null };
  }

  /** The error a failed call throws. */
  protected toError(e: { type: string; message: string; traceback: string }, stdout: string, stderr: string): ReplError {
    return new ReplError(e.type, e.message, e.traceback, stdout, stderr);
  }

  /**
   * Calls a function of the REPL with JSON arguments: a name defined in it, or a function expression
   * such as `(a, b) => a + b` (Python: `lambda a, b: a + b`). A returned promise/coroutine is awaited.
   */
  async call<T = unknown>(fn: string, ...args: unknown[]): Promise<T> {
    const out = await this.run<T>("repl.call", { fn, args });
    if (out.error) throw out.error;
    return out.value;
  }

  /** Ends the REPL (its state is lost). Closing one that already ended does nothing. */
  async close(): Promise<void> {
    try {
      await this.conn.request("repl.close", { sandbox: this.sandbox, pid: this.pid });
    } catch (err) {
      if (!(err instanceof RpcError && err.rpcCode === ErrorCodes.ProcessNotFound)) throw err;
    }
    await this.status.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
