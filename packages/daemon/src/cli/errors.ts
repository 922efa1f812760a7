/**
 * How the CLI reports failures: one line in the words the user typed (flags, not protocol
 * field names), exit code 2 for usage and 1 for everything else, a stack only with SBX_DEBUG=1.
 */
import { AuthError, InvalidOptionError, SandboxError } from "@sbx/client";
import { UsageError } from "./args.js";

/** A failure the CLI expected and explains itself (no stack, exit code 1). */
export class CliError extends Error {}

/** Protocol field → the flag that sets it; `sbx net` names its allow-list `--allow`. */
const FLAGS: Record<string, Record<string, string>> = {
  default: { memory: "--memory", disk: "--disk", cpus: "--cpus", timeout: "--timeout", env: "--env", labels: "--label", allowNet: "--allow-net", secrets: "--secret" },
  net: { allowNet: "--allow" },
};

/**
 * `params.memory: must be ...` → `--memory: must be ...`; `params.secrets.KEY.hosts[0]: ...` →
 * `--secret KEY (hosts[0]): ...`. Fields no flag sets keep their protocol name.
 */
export function withFlagNames(message: string, command: string): string {
  return message.replace(/^params\.([A-Za-z]+)((?:\.[^.:[\s]+|\[\d+\])*)(?=:)/, (whole, field: string, path: string) => {
    const flag = FLAGS[command]?.[field] ?? FLAGS.default![field];
    if (!flag) return whole;
    // A map's key (env name, label, secret name) reads as the flag's argument; array indexes are dropped.
    const m = /^\.([^.[]+)(.*)$/.exec(path);
    const key = m ? ` ${m[1]}` : "";
    const rest = (m ? m[2]! : path).replace(/^(\[\d+\])+$/, "").replace(/^\./, "");
    return `${flag}${key}${rest ? ` (${rest})` : ""}`;
  });
}

/** Why the daemon refused the token, in CLI terms (the SDK's message speaks of `{ token }`). */
function authMessage(err: AuthError, url: string): string {
  // The SDK's explanation of another user's daemon on the port is already what a CLI user needs.
  if (err.portOwner) return err.message;
  if (err.message.startsWith("no token")) {
    return `no token: ${err.tokenFile} cannot be read (${(err.cause as Error | undefined)?.message ?? "unreadable"}); pass --token or set SBX_TOKEN, or run as the user whose daemon wrote it`;
  }
  switch (err.tokenSource) {
    case "option":
      return `the daemon at ${url} refused the token given with --token (HTTP 401): pass the token of the daemon at ${url} (its state dir's token file)`;
    case "SBX_TOKEN":
      return `the daemon at ${url} refused the token in SBX_TOKEN (HTTP 401): set SBX_TOKEN (or pass --token) to the token of the daemon at ${url} (its state dir's token file)`;
    case "file":
      return `the daemon at ${url} refused the token from ${err.tokenFile} (HTTP 401): that file belongs to another daemon; pass --token or set SBX_TOKEN to the token of the daemon at ${url}`;
    default:
      return err.message;
  }
}

/** The line to print for `err` and the exit code, for command `command` talking to `url`. */
export function describeFailure(err: unknown, command: string, url: string): { line: string; code: number } {
  if (err instanceof UsageError) return { line: err.message, code: 2 };
  if (err instanceof CliError) return { line: err.message, code: 1 };
  if (err instanceof AuthError) return { line: authMessage(err, url), code: 1 };
  if (err instanceof InvalidOptionError) return { line: withFlagNames(err.message, command), code: 1 };
  if (err instanceof SandboxError) return { line: err.message, code: 1 };
  const message = err instanceof Error ? err.message : String(err);
  // Anything else is a bug or an unforeseen condition: one line, the stack on request.
  return { line: `${message.split("\n")[0]} (SBX_DEBUG=1 prints the stack)`, code: 1 };
}
