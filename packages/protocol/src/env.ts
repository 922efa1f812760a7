import { Type } from "@sinclair/typebox";
import { EnvMap, EnvName, Obj, SandboxId } from "./common.js";

export const EnvGetParams = Obj({ sandbox: SandboxId, name: EnvName });
export const EnvGetResult = Type.Union([Type.String(), Type.Null()]);
export const EnvSetParams = Obj({ sandbox: SandboxId, name: EnvName, value: Type.String({ maxLength: 1 << 20, pattern: "^[^\\u0000]*$", errorMessage: "must be a string without NUL bytes" }) });
export const EnvDeleteParams = EnvGetParams;
export const EnvToObjectParams = Obj({ sandbox: SandboxId });
export const EnvToObjectResult = EnvMap;
