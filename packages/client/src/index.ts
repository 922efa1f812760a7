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
export { ShCommand, shellEscape } from "./sh.js";
export { SandboxFs, DEFAULT_MAX_READ_BYTES, type FileInfo, type DirEntry, type WalkEntry, type WalkOptions, type WriteFileOptions, type FileData, type ReadFileOptions, type DownloadOptions } from "./fs.js";
export { SandboxEnv } from "./env.js";
export type { ExitStatus, CommandOutput, ConnectOptions, SandboxInfo, Usage, EgressEvent } from "./types.js";
export {
  SandboxError, ConnectionError, AuthError, RpcError, SandboxCommandError, SandboxNotFoundError,
  InvalidOptionError, NetworkPolicyError, ResourceLimitError, VolumeNotFoundError, InUseError, UnsupportedError,
} from "./errors.js";
export { Client, Volume, Snapshot, Volumes, Snapshots, type VolumeInit, type SnapshotInit, type ListOptions, type PaginatedList } from "./volumes.js";
