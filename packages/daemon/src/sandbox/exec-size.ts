/**
 * What one execve can carry. The kernel refuses (E2BIG) any argument or `NAME=value` string
 * longer than MAX_ARG_STRLEN (128 KiB) and argv + envp past ARG_MAX (a quarter of the stack
 * limit, 2 MiB by default); sbx keeps every process to 1 MiB so the limit does not depend on
 * the host, and says which it was before anything reaches the sandbox.
 */
export const MAX_EXEC_STRING = 128 * 1024 - 1;
export const MAX_EXEC_BYTES = 1 << 20;

const kib = (n: number) => `${Math.ceil(n / 1024)} KiB`;

/** The first thing wrong with this argv and environment, as the field to name and why; null if it fits. */
export function execSizeProblem(argv: readonly string[], env: Readonly<Record<string, string>>, argsField = "args"): { field: string; message: string } | null {
  let total = 0;
  for (const [i, arg] of argv.entries()) {
    const n = Buffer.byteLength(arg) + 1;
    if (n > MAX_EXEC_STRING + 1) return { field: i === 0 ? "cmd" : `${argsField}[${i - 1}]`, message: `is ${kib(n)}; one argument may be at most 128 KiB (the kernel's limit)` };
    total += n + 8;
  }
  for (const [name, value] of Object.entries(env)) {
    const n = Buffer.byteLength(name) + 1 + Buffer.byteLength(value) + 1;
    if (n > MAX_EXEC_STRING + 1) return { field: `env.${name}`, message: `is ${kib(n)}; one variable may be at most 128 KiB (the kernel's limit)` };
    total += n + 8;
  }
  if (total > MAX_EXEC_BYTES) {
    return { field: "env", message: `a process's arguments and environment would come to ${kib(total)}; together they may be at most ${kib(MAX_EXEC_BYTES)}` };
  }
  return null;
}
