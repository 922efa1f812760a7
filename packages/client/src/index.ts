/**
 * The sbx TypeScript SDK: create sandboxes on a self-hosted sbx daemon, run processes in
 * them with streaming output, move files in and out.
 *
 * @example
 * import { Sandbox } from "@sbx/client";
 * await using sb = await Sandbox.create({ timeout: "5m" });
 * console.log(await sb.sh`uname -a`.text());
 * @module
 */
export { Sandbox, type SandboxOptions, type SpawnOptions, type Stdio, type SignalName } from "./sandbox.js";
export { ChildProcess } from "./process.js";
export { SandboxDeno, DenoRepl, DenoProcess, type DenoRunOptions } from "./runtimes/deno.js";
export { SandboxPython, PythonRepl } from "./runtimes/python.js";
export { Repl, ReplError, type ReplOptions, type CallOptions, type ReplOutput } from "./runtimes/repl.js";
export { decodeValue } from "./runtimes/value.js";
export { ShCommand, shellEscape, type ShellPipeKind } from "./sh.js";
export { KillController, KillSignal, type KillSignalListener } from "./kill-signal.js";
export {
  SandboxFs, FsFile, SeekMode, DEFAULT_MAX_READ_BYTES, DEFAULT_MAX_DOWNLOAD_BYTES,
  type FileInfo, type DirEntry, type WalkEntry, type WalkOptions, type ExpandGlobOptions, type WriteFileOptions, type FileData, type ReadFileOptions,
  type DownloadOptions, type MkdirOptions, type RemoveOptions, type OpenOptions, type PathLike,
} from "./fs/index.js";
export { SandboxEnv } from "./env.js";
export { Client, type Sandboxes, type SandboxMetadata } from "./deno/client.js";
export { VsCode } from "./deno/unsupported.js";
export type { DenoIgnoredOptions, DenoUnsupportedOptions } from "./deno-options.js";
export type { ExitStatus, CommandOutput, ConnectOptions, SandboxInfo, Usage, EgressEvent, ProcessListing } from "./types.js";
export type { ExitStatus as ChildProcessStatus, CommandOutput as ChildProcessOutput, CommandOutput as SandboxCommandResult } from "./types.js";
export {
  SandboxError, ConnectionError, AuthError, RpcError, SandboxCommandError, SandboxNotFoundError,
  InvalidOptionError, NetworkPolicyError, ResourceLimitError, NotSupportedError, VolumeNotFoundError, InUseError, UnsupportedError,
  // @deno/sandbox's family, arranged so that instanceof works for both (see errors.ts)
  SandboxSdkError, ApiError, ConnectionClosedError, ConnectionEstablishmentError, InvalidMemoryError, InvalidTimeoutError,
  InvalidTokenError, MissingTokenError, NetworkError, SandboxKillError,
} from "./errors.js";
export { Volume, Snapshot, Volumes, Snapshots, Images, type ImageBuildInit, type VolumeInit, type SnapshotInit, type ListOptions, type PaginatedList } from "./volumes.js";
