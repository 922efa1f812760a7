import type { SignalName } from "@sbx/protocol";

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

/** What a sandbox used, from the kernel's own accounting. */
export interface Usage {
  cpuSeconds: number;
  memoryPeakBytes: number;
  memoryGbSeconds: number;
  /** Bytes in use on the writable storage (home + /tmp). */
  diskBytes: number;
  wallSeconds: number;
  egress: { requests: number; blocked: number; bytesOut: number; bytesIn: number };
  /** True when the figures come from per-process accounting rather than a cgroup (rootless mode). */
  approximate: boolean;
  status: "running" | "stopped";
}
