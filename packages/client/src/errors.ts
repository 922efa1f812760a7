/**
 * The SDK's errors: sbx's tree (`SandboxError` and below, each with a stable string `code`)
 * grafted onto `@deno/sandbox`'s (`SandboxSdkError` and its family), so that `instanceof`
 * works for code written against either. Where Deno's class has a twin here, the twin extends
 * the sbx class it refines: `InvalidMemoryError` is an `InvalidOptionError`,
 * `ConnectionClosedError` a `ConnectionError`, `InvalidTokenError` an `AuthError`.
 *
 * Differences from Deno, deliberate: `code` is sbx's string everywhere but on
 * `SandboxCommandError` (the exit code, as Deno's); Deno's numeric `RpcError.code` is `rpcCode`
 * and `ConnectionClosedError.code` (the WebSocket close code) is `closeCode`. A failed file
 * or process call is an `RpcError` whose `code` is its errno (`"ENOENT"`), as Deno's are.
 */
import { ErrorCodes } from "@sbx/protocol";
import type { ExitStatus } from "./types.js";

/** The base of every error the SDK raises about itself (Deno's name for it). */
export class SandboxSdkError extends Error {
  constructor(message?: string, options?: { cause?: unknown }) {
    super(message, options);
    // As Deno's: the base keeps the name "Error"; each subclass is named for itself.
    if (new.target !== SandboxSdkError) this.name = new.target.name;
  }
}

/** Base class of every error sbx throws; `code` is stable and safe to switch on. */
export class SandboxError extends SandboxSdkError {
  readonly code: string | number = "SANDBOX_ERROR";
}

/** The connection to the daemon failed or closed; pending calls reject with this. */
export class ConnectionError extends SandboxError {
  override readonly code: string = "CONNECTION_ERROR";
}

/**
 * The connection closed: every pending call rejects with this, and so does every call made
 * after. `closeCode` and `reason` are the WebSocket's, when it closed with one.
 */
export class ConnectionClosedError extends ConnectionError {
  override readonly code: string = "CONNECTION_CLOSED";
  /** The WebSocket close code (RFC 6455); Deno calls it `code`. */
  readonly closeCode: number | undefined;
  readonly reason: string | undefined;
  constructor(closeCode?: number, reason?: string, options: { message?: string; cause?: unknown } = {}) {
    const message =
      options.message ?? (closeCode !== undefined ? `Connection closed (code: ${closeCode}${reason ? `, reason: ${reason}` : ""})` : "Connection to the sandbox was already closed");
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

/** The daemon answered the connection attempt with an HTTP error instead of a WebSocket. */
export class ConnectionEstablishmentError extends ConnectionError {
  override readonly code: string;
  /** The HTTP status. */
  readonly status: number;
  readonly traceId: string | undefined;
  constructor(status: number, code: string, message: string, traceId?: string) {
    super(`${message} (status: ${status}, code: ${code}${traceId ? `, traceId: ${traceId}` : ""})`);
    this.status = status;
    this.code = code;
    this.traceId = traceId;
  }
}

/** The daemon could not be reached at all (refused, unresolvable, unreachable); `cause` is the socket's error. */
export class NetworkError extends ConnectionError {
  override readonly code: string = "NETWORK_ERROR";
}

/**
 * The daemon refused the token (HTTP 401), or no token was found. The message says which token
 * was tried and what to do; when another local user's daemon holds the port, `portOwner` says whose.
 */
export class AuthError extends SandboxError {
  override readonly code: string = "AUTH_ERROR";
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

/** The daemon refused the token given (HTTP 401). */
export class InvalidTokenError extends AuthError {}

/** No token was given and none could be found. */
export class MissingTokenError extends AuthError {}

/** The daemon answered a call with a JSON-RPC error. */
export class RpcError extends SandboxError {
  override readonly code: string;
  constructor(message: string, readonly rpcCode: number, readonly data?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.code = errnoOf(data) ?? "RPC_ERROR";
  }
  /** The errno name (`ENOENT`, `EACCES`, ...) of a failed file or spawn operation, if any. */
  get errno(): string | undefined {
    return errnoOf(this.data);
  }
}

function errnoOf(data: unknown): string | undefined {
  const d = data as { errno?: unknown } | undefined;
  return typeof d?.errno === "string" ? d.errno : undefined;
}

/** No running sandbox with that id belongs to this token. */
export class SandboxNotFoundError extends RpcError {
  override readonly code = "SANDBOX_NOT_FOUND";
}

/** An option or parameter was rejected; the message names it. */
export class InvalidOptionError extends RpcError {
  override readonly code: string = "INVALID_OPTION";
}

/** A memory size the SDK cannot read, or outside what the daemon allows. */
export class InvalidMemoryError extends InvalidOptionError {
  constructor(message: string, data?: unknown) {
    super(message, ErrorCodes.InvalidParams, data);
  }
}

/** A timeout the SDK cannot read ("session", or a duration such as "90s", "5m", "1h30m"). */
export class InvalidTimeoutError extends InvalidOptionError {
  constructor(message: string, data?: unknown) {
    super(message, ErrorCodes.InvalidParams, data);
  }
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

/** Something `@deno/sandbox` offers that sbx does not (yet); the message says what and what to use instead. */
export class NotSupportedError extends SandboxError {
  override readonly code: string = "NOT_SUPPORTED";
}

/** Killing a sandbox failed; `status` is the daemon's error code and `response` its message. */
export class SandboxKillError extends SandboxError {
  override readonly code: string = "KILL_FAILED";
  constructor(readonly status: number, readonly response: string, options?: { cause?: unknown }) {
    super(`Failed to kill sandbox: ${status} ${response}`, options);
  }
}

/**
 * A command run with `sh` exited unsuccessfully. As Deno's: `code` is the exit code (128 + the
 * signal's number when a signal ended it) and the message never holds the script (it may hold
 * secrets); it ends with the command's stderr. `status`, `stdout` and `stderr` say the rest.
 */
export class SandboxCommandError extends SandboxError {
  override readonly code: number;
  readonly status: ExitStatus;
  constructor(message: string, codeOrStatus: number | ExitStatus, readonly stdout = "", readonly stderr = "") {
    super(message);
    this.status = typeof codeOrStatus === "number" ? { success: false, code: codeOrStatus, signal: null, oom: false } : codeOrStatus;
    this.code = this.status.code;
  }
}

/**
 * A failed call of `Client` (Deno's REST error; its `name` is "ClientError" as Deno's is).
 * `status` is the daemon's error code, `code` the sbx code of the error behind it.
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly traceId: string | undefined;
  constructor(status: number, code: string, message: string, traceId?: string, options?: { cause?: unknown }) {
    super(traceId ? `${message} (Trace ID: ${traceId})` : message, options);
    this.name = "ClientError";
    this.status = status;
    this.code = code;
    this.traceId = traceId;
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
