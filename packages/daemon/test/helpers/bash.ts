import { SandboxNotFoundError, type ExitStatus, type Sandbox } from "@sbx/client";

/** What a bash script run in a sandbox ended with. */
export interface Run {
  code: number | null;
  out: string;
  err: string;
  status: ExitStatus;
}

/** Runs `script` with bash in `sb` (in `cwd`, with `env` on top of the sandbox's) and collects its output. */
export async function runBash(sb: Sandbox, script: string, opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<Run> {
  const r = await (await sb.spawn("bash", { args: ["-c", script], ...opts })).output();
  return { code: r.status.code, out: r.stdoutText ?? "", err: r.stderrText ?? "", status: r.status };
}

/** Its stdout, or an error that shows both streams if it did not exit 0. */
export function ok(r: Run, what: string): string {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\n--- stdout\n${r.out}\n--- stderr\n${r.err}`);
  return r.out;
}

/** Polls `fn` every 25 ms until it gives a truthy value, which it returns; fails naming `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => T | null | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Whether `sb` still runs (a test that crashed it must not take the next ones down too). */
export function sandboxAlive(sb: Sandbox): Promise<boolean> {
  return sb.env.toObject().then(
    () => true,
    (err) => {
      if (err instanceof SandboxNotFoundError) return false;
      throw err;
    },
  );
}
