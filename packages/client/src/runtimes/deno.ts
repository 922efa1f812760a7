/**
 * `sandbox.deno`: Deno inside the sandbox (the daemon's own Deno, bound read-only at /.sbx/bin/deno
 * and on PATH), with @deno/sandbox's names: `eval`, `repl()` → DenoRepl.
 */
import { ErrorCodes } from "@sbx/protocol";
import { ChildProcess } from "../process.js";
import { InvalidOptionError } from "../errors.js";
import type { SpawnOptions } from "../sandbox.js";
import { fetchProcess, waitForHttp } from "./http.js";
import { Repl, ReplError, type CallOptions, type ReplOptions, type ReplStarter } from "./repl.js";

/** @internal How a Sandbox spawns a process and builds its handle. */
export type Spawner = <P>(cmd: string, options: SpawnOptions, make: (...parts: ConstructorParameters<typeof ChildProcess>) => P) => Promise<P>;

/** Options of `deno.run`: an `entrypoint` file (or URL) or `code`, and what `spawn` takes. */
export type DenoRunOptions = Omit<SpawnOptions, "args" | "pty" | "cols" | "rows"> & {
  /** Arguments of the script (`Deno.args`). */
  scriptArgs?: string[];
} & ({ entrypoint: string | URL; code?: never } | { code: string; entrypoint?: never; /** The code's language (default "ts"). */ extension?: "ts" | "tsx" | "js" | "jsx" });

/**
 * A Deno program started by `deno.run`: a ChildProcess that also knows when it serves HTTP.
 *
 * @example
 * await using server = await sb.deno.run({ code: "Deno.serve({ port: 8000 }, () => new Response('hi'))" });
 * await server.httpReady;                                   // true once it listens
 * await (await server.fetch("http://localhost/")).text();   // "hi"
 */
export class DenoProcess extends ChildProcess {
  #httpReady: Promise<boolean> | null = null;

  /** True once the program (or a child of it) listens on a TCP port; false if it exits first. */
  get httpReady(): Promise<boolean> {
    return (this.#httpReady ??= waitForHttp(this.conn, this.sandbox, this.pid, this.status));
  }

  /** Sends a request to the server the program started (its first listening port); the URL's host is not used for routing. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    return fetchProcess(this.conn, this.sandbox, this.pid, input, init);
  }

  /** Kills the program (SIGKILL) and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill("SIGKILL").catch(() => {});
    await this.status.catch(() => {});
  }
}

/** Built-in error classes a REPL's exception is rebuilt as (anything else is a ReplError). */
const ERRORS: Record<string, ErrorConstructor> = { Error, TypeError, ReferenceError, SyntaxError, RangeError, URIError, EvalError };

/**
 * A Deno REPL: one isolate whose state (let, const, functions, imports) persists across calls.
 * Code is TypeScript or JavaScript, with top-level await.
 *
 * @example
 * await using repl = await sb.deno.repl();
 * await repl.eval("const x = 40;");
 * await repl.eval("x + 2"); // 42
 * await repl.call("(a, b) => a * b", 6, 7); // 42
 */
export class DenoRepl extends Repl {
  /**
   * Evaluates code and returns the value of its last expression. Values come back as their own
   * types where they can (undefined, BigInt, Date, Map, Set, RegExp, Uint8Array, shared references);
   * class instances as plain objects of their own properties. An exception rejects as the built-in
   * class of the same name (TypeError ...) carrying the REPL's stack, or a ReplError.
   */
  async eval<T = unknown>(code: string, options: CallOptions = {}): Promise<T> {
    const out = await this.run<T>("repl.eval", { code }, options);
    if (out.error) throw out.error;
    return out.value;
  }

  protected override toError(e: { type: string; message: string; traceback: string }, stdout: string, stderr: string): ReplError {
    const Ctor = ERRORS[e.type];
    if (!Ctor) return new ReplError(e.type, e.message, e.traceback, stdout, stderr);
    const err = new Ctor(e.message) as ReplError;
    err.stack = e.traceback || `${e.type}: ${e.message}`;
    return err;
  }
}

/** Deno in a sandbox. */
export class SandboxDeno {
  /** @internal */
  constructor(
    private readonly spawn: Spawner,
    private readonly start: ReplStarter,
  ) {}

  /**
   * Runs a Deno program with all of Deno's permissions (the sandbox is the boundary): `entrypoint`
   * (a path inside the sandbox or a URL) or `code` (TypeScript unless `extension` says otherwise).
   * stdout and stderr default to "inherit", as in @deno/sandbox.
   */
  run(options: DenoRunOptions): Promise<DenoProcess> {
    const { entrypoint, code, scriptArgs = [], ...spawn } = options as DenoRunOptions & { entrypoint?: string | URL; code?: string; extension?: string };
    const extension = (options as { extension?: string }).extension ?? "ts";
    delete (spawn as { extension?: string }).extension;
    let args: string[];
    if (entrypoint !== undefined) args = ["run", "-A", "--quiet", entrypoint instanceof URL ? (entrypoint.protocol === "file:" ? entrypoint.pathname : entrypoint.href) : entrypoint, ...scriptArgs];
    else if (typeof code === "string") args = ["eval", "--quiet", `--ext=${extension}`, code, ...scriptArgs];
    else throw new InvalidOptionError("deno.run: give entrypoint or code", ErrorCodes.InvalidParams);
    return this.spawn("deno", { stdout: "inherit", stderr: "inherit", ...spawn, args }, (...parts) => new DenoProcess(...parts));
  }

  /** Starts a REPL: state persists between `eval`/`call`s until `close()`. */
  repl(options: ReplOptions = {}): Promise<DenoRepl> {
    return this.start("deno", options, (...parts) => new DenoRepl(...parts));
  }

  /**
   * Evaluates code in a new REPL that is closed afterwards; the value of its last expression.
   *
   * @example
   * await sb.deno.eval("const a = 1; const b = 2; a + b;"); // 3
   */
  async eval<T = unknown>(code: string, options: ReplOptions & CallOptions = {}): Promise<T> {
    const { timeout, ...start } = options;
    const repl = await this.repl(start);
    try {
      return await repl.eval<T>(code, timeout === undefined ? {} : { timeout });
    } finally {
      await repl.close();
    }
  }
}
