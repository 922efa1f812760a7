import { ErrorCodes, type ErrorCodeName } from "@sbx/protocol";
import { JSONRPCErrorException } from "json-rpc-2.0";

/** An error answered to the client with the protocol code it names. */
export class DaemonError extends JSONRPCErrorException {
  constructor(readonly codeName: ErrorCodeName, message: string, data?: unknown) {
    super(message, ErrorCodes[codeName], data);
  }
}

export const invalid = (field: string, message: string) => new DaemonError("InvalidParams", `params.${field}: ${message}`);
