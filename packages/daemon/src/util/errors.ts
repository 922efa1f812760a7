import { ErrorCodes, type ErrorCodeName } from "@sbx/protocol";
import { JSONRPCErrorException } from "json-rpc-2.0";

/** An error answered to the client with the protocol code it names. */
export class DaemonError extends JSONRPCErrorException {
  constructor(readonly codeName: ErrorCodeName, message: string, data?: unknown) {
    super(message, ErrorCodes[codeName], data);
    // json-rpc-2.0's constructor resets the prototype to its own class, which made every
    // `instanceof DaemonError` false (a refusal then reported as an internal error).
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

export const invalid = (field: string, message: string) => new DaemonError("InvalidParams", `params.${field}: ${message}`);
