import { Type } from "@sinclair/typebox";
import { Duration, EnvMap, Obj, Path, SandboxId, StreamId } from "./common.js";

export const ReplLanguage = Type.Union([Type.Literal("deno"), Type.Literal("python")], { description: "The runtime that keeps the REPL's state." });

export const ReplStartParams = Obj({
  sandbox: SandboxId,
  language: ReplLanguage,
  args: Type.Optional(Type.Array(Type.String({ maxLength: 1 << 20, pattern: "^[^\\u0000]*$" }), { maxItems: 4096, description: "Script arguments (Deno.args, sys.argv[1:])." })),
  cwd: Type.Optional(Path),
  env: Type.Optional(EnvMap),
  clearEnv: Type.Optional(Type.Boolean()),
  stdout: Type.Union([StreamId, Type.Null()], { description: "What the REPL's code prints to stdout (outside what a call captures), or null." }),
  stderr: Type.Union([StreamId, Type.Null()]),
});
export const ReplStartResult = Obj({ pid: Type.Integer({ minimum: 1 }) });

const Timeout = Type.Optional(
  Type.Union([Duration, Type.Integer({ minimum: 1 })], {
    description: "Interrupts the call after this long (milliseconds or a duration). Python keeps its session (KeyboardInterrupt); Deno cannot interrupt running JavaScript, so its REPL is ended.",
  }),
);

export const ReplEvalParams = Obj({
  sandbox: SandboxId,
  pid: Type.Integer({ minimum: 1 }),
  code: Type.String({ maxLength: 16 << 20 }),
  timeout: Timeout,
});

export const ReplCallParams = Obj({
  sandbox: SandboxId,
  pid: Type.Integer({ minimum: 1 }),
  fn: Type.String({ minLength: 1, maxLength: 1 << 20, description: "A function's name in the REPL, or a function expression." }),
  args: Type.Array(Type.Unknown(), { maxItems: 4096, description: "Arguments, as JSON." }),
  timeout: Timeout,
});

export const ReplCloseParams = Obj({ sandbox: SandboxId, pid: Type.Integer({ minimum: 1 }) });

export const ReplError = Obj({
  type: Type.String({ maxLength: 256, description: "The exception's class: TypeError, ZeroDivisionError, KeyboardInterrupt ..." }),
  message: Type.String({ maxLength: 1 << 20 }),
  traceback: Type.String({ maxLength: 1 << 20, description: "The stack (JavaScript) or formatted traceback (Python)." }),
});

/** One call's outcome: `ok` with the value, or the exception; what the call printed either way. */
export const ReplResult = Obj({
  ok: Type.Boolean({ description: "Whether the code ran to completion (else `error` says what it raised)." }),
  value: Type.Optional(Type.Unknown({ description: "The value (when ok), encoded so that undefined, NaN, BigInt, Date, Map, Set, bytes and shared references survive (see the SDKs' decodeValue)." })),
  repr: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: "Python: repr() of the value (null for None)." })),
  error: Type.Optional(ReplError),
  stdout: Type.String({ description: "What the call printed to stdout (Python: captured per call, Deno: empty)." }),
  stderr: Type.String(),
});
