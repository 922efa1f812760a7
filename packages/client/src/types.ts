import type { NotificationParams, ResultOf, SignalName } from "@sbx/protocol";

/** How a process ended. */
export interface ExitStatus {
  /** True when the exit code is 0. */
  success: boolean;
  /** Exit code; 128 + the signal number when a signal killed it. */
  code: number;
  /** The signal that killed it, or null. */
  signal: SignalName | string | null;
  /** True when the kernel killed it for exceeding the sandbox's memory. */
  oom: boolean;
}

/** Everything a finished process produced. */
export interface CommandOutput {
  status: ExitStatus;
  stdout: Uint8Array | null;
  stderr: Uint8Array | null;
  stdoutText: string | null;
  stderrText: string | null;
}

/** Where to reach the daemon. */
export interface ConnectOptions {
  /** Daemon URL; default `SBX_URL` or ws://127.0.0.1:7070 (starting a local daemon if none runs). */
  url?: string;
  /** Bearer token; default `SBX_TOKEN` or the daemon's token file. */
  token?: string;
}

/** A sandbox as `Sandbox.list` reports it. */
export interface SandboxInfo {
  id: string;
  labels: Record<string, string>;
  createdAt: Date;
  expiresAt: Date | null;
  status: "running" | "stopped";
}

/**
 * What a sandbox used, from the kernel's own accounting: cpuSeconds, memoryPeakBytes,
 * memoryGbSeconds, diskBytes (home + /tmp), wallSeconds, egress counters, `approximate`
 * (rootless mode) and status.
 */
export type Usage = ResultOf<"sandbox.usage">;

/** One egress decision: a request the sandbox made through its proxy, allowed or not (and why). */
export type EgressEvent = NotificationParams<"sandbox.network">["event"];

/** A process `Sandbox.processes()` lists: running or recently ended (then with `status`), with what is kept of its output ({ start, end } byte offsets; absent when not piped). */
export type ProcessListing = Omit<ResultOf<"process.list">["processes"][number], "startedAt"> & { startedAt: Date };
