/**
 * JSON-RPC error codes sbx uses beside the standard ones. Each maps to one error class in
 * the SDKs, named by the stable `code` string.
 */
export const ErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  SandboxNotFound: -32001,
  ProcessNotFound: -32002,
  SpawnFailed: -32003,
  FileSystem: -32004,
  ResourceLimit: -32005,
  NetworkPolicy: -32006,
  TooManyRequests: -32007,
  StreamFailed: -32008,
  Unavailable: -32009,
  Forbidden: -32010,
  VolumeNotFound: -32011,
  InUse: -32012,
  Unsupported: -32013,
} as const;

export type ErrorCodeName = keyof typeof ErrorCodes;

/** The `data` a file system error carries: the errno name and the sandbox path. */
export interface FileSystemErrorData {
  errno: string;
  path?: string;
}

/** Describes every error code for the OpenRPC document. */
export const ERROR_DESCRIPTIONS: Record<ErrorCodeName, string> = {
  ParseError: "The message is not valid JSON, or nests deeper than the daemon accepts.",
  InvalidRequest: "The message is not a JSON-RPC 2.0 request.",
  MethodNotFound: "No such method.",
  InvalidParams: "A parameter is missing, unknown, of the wrong type or out of range; the message names it.",
  InternalError: "The daemon failed unexpectedly; the message says what it was doing.",
  SandboxNotFound: "No running sandbox with that id belongs to this token.",
  ProcessNotFound: "No running process with that pid in the sandbox.",
  SpawnFailed: "The command could not be started (not found, not executable, bad cwd).",
  FileSystem: "A file operation failed inside the sandbox; data.errno names the error (ENOENT, EACCES, ...).",
  ResourceLimit: "A limit was reached (sandboxes per token, streams, sizes).",
  NetworkPolicy: "The network policy refused the request.",
  TooManyRequests: "Too many calls in flight on this connection.",
  StreamFailed: "A byte stream broke (the other side aborted or violated flow control).",
  Unavailable: "The sandbox stopped while the call was running, or its host cannot serve the call: the daemon is draining (no new sandboxes), or, behind a gateway, the host holding the sandbox was lost.",
  Forbidden:
    "The caller may not make this call: daemon.* methods answer only the daemon's operator token (its primary token: SBX_TOKEN or the token file), and a connection bound to one sandbox (bind in its URL) answers only calls about that sandbox; the message says which.",
  VolumeNotFound: "No volume or snapshot with that id or slug belongs to this token.",
  InUse: "The volume or snapshot is in use: mounted by a sandbox, or busy with another call; the message says by what.",
  Unsupported: "This daemon cannot do that in the mode it runs in (volumes need root mode); the message says why.",
};
