import { Type } from "@sinclair/typebox";
import { EnvMap, Obj, Path, SandboxId, Signal, StreamId } from "./common.js";

export const SpawnParams = Obj({
  sandbox: SandboxId,
  cmd: Type.String({ minLength: 1, maxLength: 4096, pattern: "^[^\\u0000]+$", errorMessage: "must be a non-empty command without NUL bytes" }),
  args: Type.Optional(
    Type.Array(Type.String({ maxLength: 1 << 20, pattern: "^[^\\u0000]*$", errorMessage: "must be a string without NUL bytes" }), { maxItems: 65536 }),
  ),
  cwd: Type.Optional(Path),
  env: Type.Optional(EnvMap),
  clearEnv: Type.Optional(Type.Boolean({ description: "Start from an empty environment instead of the sandbox's." })),
  sudo: Type.Optional(
    Type.Boolean({
      description:
        "Run as uid 0 of the sandbox's own user namespace (HOME=/root, USER=root unless env says otherwise): only in a sandbox booted from an image (`root`), where that root owns the image's files and nothing outside the sandbox.",
    }),
  ),
  stdin: Type.Union([StreamId, Type.Null()], { description: "Stream the client writes the process's stdin to, or null for /dev/null." }),
  stdout: Type.Union([StreamId, Type.Null()], { description: "Stream carrying stdout to the client, or null to discard it." }),
  stderr: Type.Union([StreamId, Type.Null()], { description: "Stream carrying stderr to the client, or null to discard it." }),
  pty: Type.Optional(
    Obj(
      { cols: Type.Integer({ minimum: 1, maximum: 65535 }), rows: Type.Integer({ minimum: 1, maximum: 65535 }) },
      { description: "Run the process on a terminal of this size (stdin and stdout are the terminal; stderr must be null)." },
    ),
  ),
});
export const SpawnResult = Obj({ pid: Type.Integer({ minimum: 1, description: "Process id inside the sandbox." }) });

export const KillParams = Obj({ sandbox: SandboxId, pid: Type.Integer({ minimum: 1 }), signal: Type.Optional(Signal) });

export const ExitStatus = Obj({
  success: Type.Boolean(),
  code: Type.Integer({ minimum: 0, maximum: 255, description: "Exit code; 128 + signal number when killed by a signal." }),
  signal: Type.Union([Signal, Type.String({ pattern: "^SIG[A-Z0-9]+$", maxLength: 16 }), Type.Null()]),
  oom: Type.Boolean({ description: "The kernel killed the process for exceeding the sandbox's memory." }),
});

export const ProcessExitNotification = Obj({ sandbox: SandboxId, pid: Type.Integer({ minimum: 1 }), status: ExitStatus });

export const ResizeParams = Obj({
  sandbox: SandboxId,
  pid: Type.Integer({ minimum: 1 }),
  cols: Type.Integer({ minimum: 1, maximum: 65535 }),
  rows: Type.Integer({ minimum: 1, maximum: 65535 }),
});

export const PortsParams = Obj({ sandbox: SandboxId, pid: Type.Integer({ minimum: 1 }) });
export const PortsResult = Obj({
  ports: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { maxItems: 64, description: "TCP ports the process or its descendants listen on, ascending." }),
});

const Span = Type.Optional(
  Obj(
    { start: Type.Integer({ minimum: 0, description: "The first byte offset still kept." }), end: Type.Integer({ minimum: 0, description: "Bytes the stream carried so far." }) },
    { description: "What the daemon keeps of the stream (the last 1 MiB); absent when it was not piped." },
  ),
);

export const ListProcessesParams = Obj({ sandbox: SandboxId });
export const ProcessListing = Obj({
  pid: Type.Integer({ minimum: 1 }),
  cmd: Type.String(),
  args: Type.Array(Type.String()),
  startedAt: Type.String({ format: "date-time" }),
  running: Type.Boolean(),
  status: Type.Optional(ExitStatus),
  stdout: Span,
  stderr: Span,
});
export const ListProcessesResult = Obj({ processes: Type.Array(ProcessListing) });

export const AttachParams = Obj({
  sandbox: SandboxId,
  pid: Type.Integer({ minimum: 1 }),
  stdout: Type.Union([StreamId, Type.Null()], { description: "Stream to carry stdout from `stdoutFrom` on, or null." }),
  stderr: Type.Union([StreamId, Type.Null()]),
  stdoutFrom: Type.Optional(Type.Integer({ minimum: 0, description: "Byte offset to resume stdout at (default: the earliest kept)." })),
  stderrFrom: Type.Optional(Type.Integer({ minimum: 0 })),
});
export const AttachResult = Obj({
  stdoutFrom: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: "The offset stdout resumes at (null: not attached)." }),
  stderrFrom: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
  status: Type.Optional(ExitStatus),
});
