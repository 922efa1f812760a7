import type { ChildProcess } from "./process.js";
import { NotSupportedError, SandboxCommandError } from "./errors.js";
import { KillSignal, killSignalOf } from "./kill-signal.js";
import type { CommandOutput } from "./types.js";

/**
 * Quotes one value for bash so it stays a single word, whatever it contains. As Deno's:
 * null and undefined are the empty word, objects are refused.
 */
export function shellEscape(value: unknown): string {
  if (value === null || value === undefined) return "''";
  if (typeof value === "object") throw new Error("Cannot use objects as shell arguments");
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

/** What `stdout` and `stderr` of a command do: captured ("piped", the default), copied to this process's ("inherit"), or dropped. */
export type ShellPipeKind = "piped" | "inherit" | "null";

export type Spawner = (
  script: string,
  opts: { cwd?: string; env: Record<string, string>; stdout: ShellPipeKind; stderr: ShellPipeKind; sudo?: boolean },
) => Promise<ChildProcess>;

interface ShOptions {
  cwd?: string;
  env: Record<string, string>;
  noThrow: boolean;
  sudo: boolean;
  stdout: ShellPipeKind;
  stderr: ShellPipeKind;
  signal?: KillSignal;
}

const DEFAULTS: ShOptions = { env: {}, noThrow: false, sudo: false, stdout: "piped", stderr: "piped" };

/**
 * A shell command in a sandbox, built by `sandbox.sh` (Deno's `SandboxCommandBuilder`). Each
 * method returns a new command with one setting changed; awaiting one runs it (once) and gives
 * its output. A non-zero exit throws `SandboxCommandError` (`code` = the exit code) unless
 * `.noThrow()` was used.
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
    /** The script, or why it cannot be built (an object among the substitutions): it then fails when run. */
    private readonly built: { script: string } | { error: Error },
    private readonly options: ShOptions = DEFAULTS,
  ) {}

  /** The bash script this command runs. */
  get script(): string {
    if ("error" in this.built) throw this.built.error;
    return this.built.script;
  }

  private with(change: Partial<ShOptions>): ShCommand {
    return new ShCommand(this.spawner, this.built, { ...this.options, ...change });
  }

  /** Runs in this directory. */
  cwd(path: string): ShCommand {
    return this.with({ cwd: path });
  }

  /** Sets an environment variable (or several, given an object). */
  env(name: string | Record<string, string>, value?: string): ShCommand {
    const add = typeof name === "string" ? { [name]: value ?? "" } : name;
    return this.with({ env: { ...this.options.env, ...add } });
  }

  /** Resolves with the output even when the command fails (`noThrow(false)` throws again). */
  noThrow(value = true): ShCommand {
    return this.with({ noThrow: value });
  }

  /**
   * Runs as root: uid 0 of the sandbox's own user namespace (spawn's `sudo`). Only a sandbox
   * booted from an image (`root`) has one; elsewhere the command fails with `UnsupportedError`
   * rather than run unprivileged.
   */
  sudo(enable = true): ShCommand {
    return this.with({ sudo: enable });
  }

  /** What to do with stdout: "piped" (default: captured), "inherit" (copied to this process's stdout) or "null". */
  stdout(kind: ShellPipeKind): ShCommand {
    return this.with({ stdout: kind });
  }

  /** What to do with stderr: "piped" (default: captured), "inherit" (copied to this process's stderr) or "null". */
  stderr(kind: ShellPipeKind): ShCommand {
    return this.with({ stderr: kind });
  }

  /**
   * Kills the command when the signal fires: an AbortSignal sends SIGTERM, a KillSignal the
   * signal its controller sends. A command built with a signal that already ended commands
   * never starts (its exit code is 128 + that signal's number).
   */
  signal(signal: KillSignal | AbortSignal): ShCommand {
    let next: KillSignal;
    if (signal instanceof KillSignal) next = signal;
    else if (signal instanceof AbortSignal) next = killSignalOf(signal);
    else throw new Error("Invalid parameter. Expected a KillSignal or AbortSignal.");
    // As Deno's: a signal set earlier still reaches the command, through the new one.
    if (this.options.signal && this.options.signal !== next) this.options.signal.linkChild(next);
    return this.with({ signal: next });
  }

  /** Starts the command and hands over the process and its streams. */
  async spawn(): Promise<ChildProcess> {
    const { cwd, env, stdout, stderr, sudo } = this.options;
    return this.spawner(this.script, { ...(cwd ? { cwd } : {}), env, stdout, stderr, ...(sudo ? { sudo } : {}) });
  }

  private async execute(): Promise<CommandOutput> {
    const signal = this.options.signal;
    let out: CommandOutput;
    if (signal?.abortedExitCode !== undefined) {
      out = { status: { success: false, code: signal.abortedExitCode, signal: null, oom: false }, stdout: new Uint8Array(), stderr: new Uint8Array(), stdoutText: "", stderrText: "" };
    } else {
      const child = await this.spawn();
      const listener = (name: Parameters<ChildProcess["kill"]>[0]) => void child.kill(name).catch(() => {});
      signal?.addListener(listener);
      try {
        out = await child.output();
      } finally {
        signal?.removeListener(listener);
      }
    }
    if (!out.status.success && !this.options.noThrow) {
      // As Deno's: the exit code and stderr, never the script (it may hold secrets).
      const stderr = out.stderrText ?? "";
      const oom = out.status.oom ? " (process ran out of memory)" : "";
      throw new SandboxCommandError(`Command failed with exit code ${out.status.code}${oom}${stderr ? `\n${stderr}` : ""}`, out.status, out.stdoutText ?? "", stderr);
    }
    return out;
  }

  /** Runs the command (once) and gives its output. */
  result(): Promise<CommandOutput> {
    this.run ??= this.execute();
    return this.run;
  }

  /** stdout as text, exactly (a trailing newline stays). */
  async text(): Promise<string> {
    const piped = this.options.stdout === "piped" ? this : this.stdout("piped");
    return (await piped.result()).stdoutText ?? "";
  }

  /** stdout parsed as JSON. */
  async json<T = unknown>(): Promise<T> {
    const text = await this.text();
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new Error(`Failed to parse JSON: ${(err as Error).message}\n${text}`);
    }
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

/** The command for a template, refusing objects among the substitutions when it runs (as Deno's does). */
export function shCommand(spawner: Spawner, strings: TemplateStringsArray, values: unknown[]): ShCommand {
  let built: { script: string } | { error: Error };
  try {
    built = { script: buildScript(strings, values) };
  } catch (err) {
    built = { error: err as Error };
  }
  return new ShCommand(spawner, built);
}
