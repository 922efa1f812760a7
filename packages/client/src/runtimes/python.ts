/**
 * `sandbox.python`: a stateful Python inside the sandbox (the host's python3, bound read-only),
 * the way code interpreters keep one: each call's value, output and exception come back apart.
 */
import { Repl, type CallOptions, type ReplOptions, type ReplOutput, type ReplStarter } from "./repl.js";

/**
 * A Python session: its globals, imports and functions persist across calls. Each call's stdout and
 * stderr (fds 1 and 2, child processes included) are captured; a `timeout` raises KeyboardInterrupt
 * in the code (as TimeoutError to the caller) and the session, with its state, goes on.
 *
 * @example
 * await using py = await sb.python.repl();
 * await py.eval("import math\nr = 2");
 * await py.eval("math.pi * r ** 2"); // 12.566370614359172
 * const out = await py.exec("print('hi'); 1 / 0");
 * out.stdout; // "hi\n"
 * out.error?.type; // "ZeroDivisionError"
 */
export class PythonRepl extends Repl {
  /** Runs code and returns the value of its last expression (null for None or a statement); raises ReplError for an exception. */
  async eval<T = unknown>(code: string, options: CallOptions = {}): Promise<T> {
    const out = await this.exec<T>(code, options);
    if (out.error) throw out.error;
    return out.value;
  }

  /** Runs code and reports everything: value, repr, captured stdout and stderr, exception (not thrown). */
  exec<T = unknown>(code: string, options: CallOptions = {}): Promise<ReplOutput<T>> {
    return this.run<T>("repl.eval", { code }, options);
  }
}

/** Python in a sandbox. */
export class SandboxPython {
  /** @internal */
  constructor(private readonly start: ReplStarter) {}

  /** Starts a session: state persists between calls until `close()`. */
  repl(options: ReplOptions = {}): Promise<PythonRepl> {
    return this.start("python", options, (...parts) => new PythonRepl(...parts));
  }

  /** Runs code in a new session that is closed afterwards; the value of its last expression. */
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
