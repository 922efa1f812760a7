import { constants as osConstants } from "node:os";

const MIB = 1024 * 1024;

/**
 * Why a sandbox ended without being asked to, in words its owner can act on: bwrap exits with
 * its first process's status, 128 + N when a signal killed it, and the cgroup counts OOM kills.
 *
 * @example deathReason({ code: 137, signal: null, oom: true, memoryBytes: 256 << 20, stderr: "" })
 * // "the kernel's OOM killer ended the sandbox's supervisor: the sandbox used all of its 256 MiB of memory; create it with more"
 */
export function deathReason(d: { code: number | null; signal: string | null; oom: boolean; memoryBytes: number; stderr: string }): string {
  const bySignal = d.signal ?? (d.code !== null && d.code > 128 ? signalName(d.code - 128) : null);
  if (d.oom) return `the kernel's OOM killer ended the sandbox's supervisor: the sandbox used all of its ${Math.round(d.memoryBytes / MIB)} MiB of memory; create it with more`;
  if (bySignal) return `the sandbox's supervisor was killed by ${bySignal} (not by sbx); bwrap: ${d.stderr}`;
  return `the sandbox's supervisor exited with code ${d.code}; bwrap: ${d.stderr}`;
}

function signalName(n: number): string {
  return Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;
}
