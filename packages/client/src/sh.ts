import type { ChildProcess } from "./process.js";
import { SandboxCommandError } from "./errors.js";
import type { CommandOutput } from "./types.js";

/** Quotes one value for bash so it stays a single word, whatever it contains. */
export function shellEscape(value: unknown): string {
  const s = String(value);
  if (s === "") return "''";
  if (/^[A-Za-z0-9_\/.,:@%+=-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Builds the script for a tagged template: every substitution escaped, arrays as several words. */
export function buildScript(strings: TemplateStringsArray, values: unknown[]): string {
  let out = strings[0] ?? "";
  values.forEach((v, i) => {
    out += Array.isArray(v) ? v.map(shellEscape).join(" ") : shellEscape(v);
    out += strings[i + 1] ?? "";
  });
  return out;
}

export type Spawner = (script: string, opts: { cwd?: string; env: Record<string, string> }) => Promise<ChildProcess>;

/**
 * A shell command in a sandbox, built by `sandbox.sh`. Awaiting it runs it once and gives
 * its output; a non-zero exit throws `SandboxCommandError` unless `.noThrow()` was used.
 *
 * @example
 * const files = await sb.sh`ls ${dir}`.text();
 * const { status } = await sb.sh`test -d ${dir}`.noThrow();
 */
export class ShCommand implements PromiseLike<CommandOutput> {
  private run: Promise<CommandOutput> | null = null;

  /** @internal */
  constructor(
    private readonly spawner: Spawner,
    readonly script: string,
    private readonly options: { cwd?: string; env: Record<string, string>; noThrow: boolean } = { env: {}, noThrow: false },
  ) {}

  /** Runs in this directory. */
  cwd(path: string): ShCommand {
    return new ShCommand(this.spawner, this.script, { ...this.options, cwd: path });
  }

  /** Sets an environment variable (or several, given an object). */
  env(name: string | Record<string, string>, value?: string): ShCommand {
    const add = typeof name === "string" ? { [name]: value ?? "" } : name;
    return new ShCommand(this.spawner, this.script, { ...this.options, env: { ...this.options.env, ...add } });
  }

  /** Resolves with the output even when the command fails. */
  noThrow(): ShCommand {
    return new ShCommand(this.spawner, this.script, { ...this.options, noThrow: true });
  }

  /** Starts the command and hands over the process and its streams. */
  spawn(): Promise<ChildProcess> {
    return this.spawner(this.script, { ...(this.options.cwd ? { cwd: this.options.cwd } : {}), env: this.options.env });
  }

  /** Runs the command (once) and gives its output. */
  result(): Promise<CommandOutput> {
    this.run ??= this.spawn()
      .then((p) => p.output())
      .then((out) => {
        if (!out.status.success && !this.options.noThrow) {
          const tail = (out.stderrText ?? "").trim().split("\n").slice(-5).join("\n");
          const how = out.status.signal ? `was killed by ${out.status.signal}` : `exited with code ${out.status.code}`;
          throw new SandboxCommandError(`command ${how}: ${this.script}${tail ? `\n${tail}` : ""}`, out.status, out.stdoutText ?? "", out.stderrText ?? "");
        }
        return out;
      });
    return this.run;
  }

  /** stdout as text, without the trailing newline. */
  async text(): Promise<string> {
    return ((await this.result()).stdoutText ?? "").replace(/\r?\n$/, "");
  }

  /** stdout parsed as JSON. */
  async json<T = unknown>(): Promise<T> {
    return JSON.parse((await this.result()).stdoutText ?? "") as T;
  }

  catch<B = never>(onRejected?: ((e: unknown) => B | PromiseLike<B>) | null): Promise<CommandOutput | B> {
    return this.result().catch(onRejected);
  }

  finally(onFinally?: (() => void) | null): Promise<CommandOutput> {
    return this.result().finally(onFinally);
  }

  then<A = CommandOutput, B = never>(onFulfilled?: ((v: CommandOutput) => A | PromiseLike<A>) | null, onRejected?: ((e: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.result().then(onFulfilled, onRejected);
  }
}
