/**
 * The options of `@deno/sandbox` that make no sense for a self-hosted daemon (accepted and
 * ignored, with a one-line warning, so code written for Deno runs unchanged), the ones sbx
 * cannot honour yet (refused clearly), and Deno's error classes for a bad memory size or timeout.
 */
import { explainParams } from "@sbx/protocol";
import { InvalidMemoryError, InvalidOptionError, InvalidTimeoutError, NotSupportedError } from "./errors.js";

/** Options of Deno's `Sandbox.create`, `Sandbox.connect` and `Client` that sbx accepts and ignores. */
export interface DenoIgnoredOptions {
  /** Ignored (sandboxes run on the daemon's host). */
  region?: string;
  /** Ignored. */
  debug?: boolean;
  /** Ignored (tokens are the daemon's). */
  org?: string;
  /** Ignored (sbx connects to `url`). */
  apiEndpoint?: string;
  /** Ignored (sbx connects to `url`). */
  sandboxEndpoint?: string | ((region: string) => string);
}

/** Options of Deno's `Sandbox.create` that sbx does not offer yet: creating with them fails, saying so. */
export interface DenoUnsupportedOptions {
  /** Not supported: sbx has no SSH access to sandboxes. */
  ssh?: boolean;
}

const IGNORED: ReadonlyArray<keyof DenoIgnoredOptions> = ["region", "debug", "org", "apiEndpoint", "sandboxEndpoint"];
const UNSUPPORTED: Record<keyof DenoUnsupportedOptions, string> = {
  ssh: "ssh: sbx gives no SSH access to sandboxes; run commands with sandbox.spawn or sandbox.sh",
};

/** `options` without Deno's ignored ones (warning once per call about those given) or unsupported ones (refused). */
export function withoutDenoOptions<T extends object>(options: T, call: string): Omit<T, keyof DenoIgnoredOptions | keyof DenoUnsupportedOptions> {
  const rest = { ...options } as Record<string, unknown>;
  const ignored = IGNORED.filter((k) => rest[k] !== undefined);
  if (ignored.length) console.warn(`sbx: ${call} ignores ${ignored.map((k) => `'${k}'`).join(", ")} (an option of Deno's hosted sandboxes; sbx runs them on the daemon at 'url')`);
  for (const [key, why] of Object.entries(UNSUPPORTED)) {
    if (rest[key] !== undefined && rest[key] !== false) throw new NotSupportedError(why);
  }
  for (const k of [...IGNORED, ...Object.keys(UNSUPPORTED)]) delete rest[k];
  return rest as Omit<T, keyof DenoIgnoredOptions | keyof DenoUnsupportedOptions>;
}

/**
 * Refuses, with Deno's error classes and the daemon's words, a memory size or timeout that
 * cannot be read, before connecting (whether it is in range is the daemon's to say).
 */
export function checkSizes(options: { memory?: unknown; timeout?: unknown }): void {
  const { memory, timeout } = options;
  const memoryProblem = memory === undefined ? null : explainParams("sandbox.create", { memory });
  if (memoryProblem) throw new InvalidMemoryError(memoryProblem);
  const timeoutProblem = timeout === undefined ? null : explainParams("sandbox.create", { timeout });
  if (timeoutProblem) throw new InvalidTimeoutError(timeoutProblem);
}

/** The daemon's refusal of a memory size or timeout, as Deno's error class for it. */
export function asDenoError(err: unknown): unknown {
  if (!(err instanceof InvalidOptionError) || err instanceof InvalidMemoryError || err instanceof InvalidTimeoutError) return err;
  if (/^params\.memory\b/.test(err.message)) return new InvalidMemoryError(err.message, err.data);
  if (/^params\.(timeout|duration)\b/.test(err.message)) return new InvalidTimeoutError(err.message, err.data);
  return err;
}
