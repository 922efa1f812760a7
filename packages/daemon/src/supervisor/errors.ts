import type { SupervisorErrorCode } from "../channel/messages.js";

/** An error the supervisor reports to the daemon with a protocol error code. */
export class CallError extends Error {
  constructor(readonly code: SupervisorErrorCode, message: string, readonly errno?: string) {
    super(message);
  }
}

/** Wraps a Node fs error, keeping its errno name and the sandbox path it concerned. */
export function fsError(err: unknown): CallError {
  if (err instanceof CallError) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === "string" && /^E[A-Z0-9]+$/.test(e.code)) {
    const hint =
      e.code === "ENOSPC" ? " (no space left: the sandbox's disk is full)" : e.code === "EIO" ? " (an I/O error: the data did not reach the disk; the host's disk may be full)" : "";
    return new CallError("FileSystem", `${e.message}${hint}`, e.code);
  }
  return new CallError("InternalError", e instanceof Error ? e.message : String(err));
}
