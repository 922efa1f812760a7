/**
 * `sandbox.deno`: Deno inside the sandbox (the daemon's own Deno, bound read-only at /.sbx/bin/deno
 * and on PATH), with @deno/sandbox's names: `eval`, `repl()` → DenoRepl.
 */
import type { Connection } from "../connection.js";
import { Repl, ReplError, type CallOptions, type ReplOptions, type ReplStarter } from "./repl.js";

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
    private readonly conn: Connection,
    private readonly sandbox: string,
    private readonly start: ReplStarter,
  ) {}

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
