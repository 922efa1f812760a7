import { Type, type TSchema, type SchemaOptions } from "@sinclair/typebox";
import { BYTE_SIZE_PATTERN, DURATION_PATTERN } from "./units.js";

/**
 * A strict object: every property required unless wrapped in `Type.Optional`, and unknown
 * fields rejected, so a misspelt option is an error rather than silently ignored.
 */
export function Obj<T extends Record<string, TSchema>>(props: T, options: SchemaOptions = {}) {
  return Type.Object(props, { additionalProperties: false, ...options });
}

/** The sandbox user's home, and where processes start and relative paths resolve (as in Deno's sandboxes). */
export const SANDBOX_HOME = "/home/sandbox";
/** The home's former name: the same directory as {@link SANDBOX_HOME} (bound there), kept so code written for it keeps working. */
export const SANDBOX_HOME_ALIAS = "/home/user";

/**
 * The names an absolute sandbox path has: itself and, under the home, its spelling through the
 * other name of the home (`/home/user/x` is `/home/sandbox/x`).
 *
 * @example
 * pathSpellings("/home/sandbox/t"); // ["/home/sandbox/t", "/home/user/t"]
 */
export function pathSpellings(path: string): string[] {
  for (const [from, to] of [[SANDBOX_HOME, SANDBOX_HOME_ALIAS], [SANDBOX_HOME_ALIAS, SANDBOX_HOME]] as const) {
    if (path === from || path.startsWith(`${from}/`)) return [path, to + path.slice(from.length)];
  }
  return [path];
}

/** A path inside a sandbox: relative paths resolve against the home. */
export const Path = Type.String({
  minLength: 1,
  maxLength: 4096,
  pattern: "^[^\\u0000]*$",
  description: `A path inside the sandbox; relative paths resolve against ${SANDBOX_HOME} (${SANDBOX_HOME_ALIAS} is the same directory).`,
  errorMessage: "must be a non-empty path of at most 4096 characters without NUL bytes",
});

export const SandboxId = Type.String({
  minLength: 1,
  maxLength: 128,
  description: 'A sandbox id: "sbx_", then (on a daemon with an id prefix) the prefix and "_", then at least 20 url-safe random characters.',
});

/** Client-chosen id of a byte stream carried in binary frames (see STREAM_FRAMES). */
export const StreamId = Type.Integer({ minimum: 1, maximum: 0x7fffffff, description: "A stream id chosen by the client, unique on its connection." });

/** Signals a caller may send; anything else is rejected as an invalid parameter. */
export const SIGNALS = [
  "SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2",
  "SIGSTOP", "SIGCONT", "SIGTSTP", "SIGALRM", "SIGPIPE", "SIGWINCH", "SIGABRT",
] as const;
export type SignalName = (typeof SIGNALS)[number];
export const Signal = Type.Union(SIGNALS.map((s) => Type.Literal(s)), {
  description: "A POSIX signal name.",
  errorMessage: `must be one of ${SIGNALS.join(", ")}`,
});

export const Duration = Type.String({
  pattern: DURATION_PATTERN,
  description: 'A duration: digits and a unit (h, m, s, ms), several from largest to smallest, such as "500ms", "90s", "5m", "2h" or "1h30m".',
  errorMessage: 'must be a duration such as "30s", "5m", "2h" or "1h30m"',
});

const BYTE_SIZE_FORMS =
  'Bytes, as a number or a size string, case-insensitive: "512MiB", "1.5GiB", "1G" (binary: K, M, G, T with or without "iB" are powers of 1024) or "10GB" (decimal: KB, MB, GB, TB are powers of 1000).';

/** A size in bytes; `what` (if given) says what it measures and comes first in the description. */
export function byteSize(what?: string) {
  return Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: BYTE_SIZE_PATTERN })], {
    description: what ? `${what} ${BYTE_SIZE_FORMS}` : BYTE_SIZE_FORMS,
    errorMessage: 'must be a non-negative number of bytes or a size such as "512MiB", "1.5GiB" or "10GB"',
  });
}

export const ByteSize = byteSize();

export const FileMode = Type.Integer({ minimum: 0, maximum: 0o7777, description: "Unix permission bits." });

export const StringMap = (description: string, maxProperties = 4096) =>
  Type.Record(Type.String({ minLength: 1, maxLength: 4096, pattern: "^[^\\u0000]+$" }), Type.String({ maxLength: 1 << 20, pattern: "^[^\\u0000]*$" }), {
    additionalProperties: false,
    description,
    maxProperties,
    errorMessage: "must map non-empty names to strings, without NUL bytes",
  });

export const EnvName = Type.String({
  minLength: 1,
  maxLength: 4096,
  pattern: "^[^\\u0000=]+$",
  description: "An environment variable name.",
  errorMessage: "must be a non-empty name without '=' or NUL bytes",
});

export const EnvMap = Type.Record(EnvName, Type.String({ maxLength: 1 << 20, pattern: "^[^\\u0000]*$" }), {
  additionalProperties: false,
  maxProperties: 4096,
  description: "Environment variables.",
  errorMessage: "must map variable names (no '=' or NUL) to strings without NUL bytes",
});

export const Empty = Obj({});
export const Null = Type.Null();
