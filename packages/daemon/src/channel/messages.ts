import { Type, type Static } from "@sinclair/typebox";
import type { MethodName } from "@sbx/protocol";

/** What the supervisor may answer; anything else is a protocol violation. */
export const SUPERVISOR_ERROR_CODES = ["InvalidParams", "ProcessNotFound", "SpawnFailed", "FileSystem", "StreamFailed", "ResourceLimit", "InternalError"] as const;
export type SupervisorErrorCode = (typeof SUPERVISOR_ERROR_CODES)[number];

const Reply = Type.Union([
  Type.Object({ t: Type.Literal("reply"), id: Type.Integer({ minimum: 1 }), ok: Type.Literal(true), v: Type.Unknown() }, { additionalProperties: false }),
  Type.Object(
    {
      t: Type.Literal("reply"),
      id: Type.Integer({ minimum: 1 }),
      ok: Type.Literal(false),
      code: Type.Union(SUPERVISOR_ERROR_CODES.map((c) => Type.Literal(c))),
      message: Type.String({ maxLength: 8192 }),
      errno: Type.Optional(Type.String({ pattern: "^[A-Z0-9_]{1,32}$" })),
    },
    { additionalProperties: false },
  ),
]);

const Exit = Type.Object(
  {
    t: Type.Literal("exit"),
    pid: Type.Integer({ minimum: 1 }),
    code: Type.Union([Type.Integer({ minimum: 0, maximum: 255 }), Type.Null()]),
    signal: Type.Union([Type.String({ pattern: "^SIG[A-Z0-9]{1,12}$" }), Type.Null()]),
  },
  { additionalProperties: false },
);

const Ready = Type.Object({ t: Type.Literal("ready"), pid: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });

/** Every message a supervisor may send. */
export const SupervisorMessage = Type.Union([Reply, Exit, Ready]);
export type SupervisorMessage = Static<typeof SupervisorMessage>;

/** A call from the daemon: a protocol method (without `sandbox`, streams renumbered); native/call.c reads it. */
export interface SupervisorCall {
  t: "call";
  id: number;
  m: MethodName;
  p: Record<string, unknown>;
}
