import { ErrorCodes } from "@sbx/protocol";
import type { ExitStatus } from "./types.js";

/** Base class of every error sbx throws; `code` is stable and safe to switch on. */
export class SandboxError extends Error {
  readonly code: string = "SANDBOX_ERROR";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The connection to the daemon failed or closed; pending calls reject with this. */
export class ConnectionError extends SandboxError {
  override readonly code = "CONNECTION_ERROR";
}

/**
 * The daemon refused the token (HTTP 401), or no token was found. The message says which token
 * was tried and what to do; when another local user's daemon holds the port, `portOwner` says whose.
 */
export class AuthError extends SandboxError {
  override readonly code = "AUTH_ERROR";
  /** Where the refused token came from: the `token` option, SBX_TOKEN, or the daemon's token file. */
  readonly tokenSource?: "option" | "SBX_TOKEN" | "file";
  /** The token file read, when `tokenSource` is "file". */
  readonly tokenFile?: string;
  /** The other user whose daemon listens at the (loopback) URL, as far as /proc tells. */
  readonly portOwner?: { uid: number; user: string | null; pid: number | null };
  constructor(message: string, options: { cause?: unknown; tokenSource?: AuthError["tokenSource"]; tokenFile?: string; portOwner?: AuthError["portOwner"] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (options.tokenSource) this.tokenSource = options.tokenSource;
    if (options.tokenFile) this.tokenFile = options.tokenFile;
    if (options.portOwner) this.portOwner = options.portOwner;
  }
}

/** The daemon answered a call with a JSON-RPC error. */
export class RpcError extends SandboxError {
  override readonly code: string = "RPC_ERROR";
  constructor(message: string, readonly rpcCode: number, readonly data?: unknown, options?: { cause?: unknown }) {
    super(message, options);
  }
  /** The errno name (`ENOENT`, `EACCES`, ...) of a failed file or spawn operation, if any. */
  get errno(): string | undefined {
    const d = this.data as { errno?: unknown } | undefined;
    return typeof d?.errno === "string" ? d.errno : undefined;
  }
}

/** No running sandbox with that id belongs to this token. */
export class SandboxNotFoundError extends RpcError {
  override readonly code = "SANDBOX_NOT_FOUND";
}

/** An option or parameter was rejected; the message names it. */
export class InvalidOptionError extends RpcError {
  override readonly code = "INVALID_OPTION";
}

/** The network policy refused something. */
export class NetworkPolicyError extends RpcError {
  override readonly code = "NETWORK_POLICY";
}

/** A limit was reached. */
export class ResourceLimitError extends RpcError {
  override readonly code = "RESOURCE_LIMIT";
}

/** No volume or snapshot with that id or slug belongs to this token. */
export class VolumeNotFoundError extends RpcError {
  override readonly code = "VOLUME_NOT_FOUND";
}

/** The volume or snapshot is in use (mounted by a sandbox, or busy with another call); the message says by what. */
export class InUseError extends RpcError {
  override readonly code = "IN_USE";
}

/** The daemon cannot do this in the mode it runs in (volumes need root mode). */
export class UnsupportedError extends RpcError {
  override readonly code = "UNSUPPORTED";
}

/** A command run with `sh` exited unsuccessfully; `status` and the output say how. */
export class SandboxCommandError extends SandboxError {
  override readonly code = "COMMAND_FAILED";
  constructor(message: string, readonly status: ExitStatus, readonly stdout: string, readonly stderr: string) {
    super(message);
  }
}

/** Maps a JSON-RPC error from the daemon onto the error class for its code. */
export function fromRpcError(err: { code: number; message: string; data?: unknown }): RpcError {
  switch (err.code) {
    case ErrorCodes.SandboxNotFound:
      return new SandboxNotFoundError(err.message, err.code, err.data);
    case ErrorCodes.InvalidParams:
      return new InvalidOptionError(err.message, err.code, err.data);
    case ErrorCodes.NetworkPolicy:
      return new NetworkPolicyError(err.message, err.code, err.data);
    case ErrorCodes.ResourceLimit:
    case ErrorCodes.TooManyRequests:
      return new ResourceLimitError(err.message, err.code, err.data);
    case ErrorCodes.VolumeNotFound:
      return new VolumeNotFoundError(err.message, err.code, err.data);
    case ErrorCodes.InUse:
      return new InUseError(err.message, err.code, err.data);
    case ErrorCodes.Unsupported:
      return new UnsupportedError(err.message, err.code, err.data);
    default:
      return new RpcError(err.message, err.code, err.data);
  }
}
