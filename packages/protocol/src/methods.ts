import { Type, type Static, type TSchema } from "@sinclair/typebox";
import type { ErrorCodeName } from "./errors.js";
import { Empty, Null } from "./common.js";
import * as S from "./sandbox.js";
import * as P from "./process.js";
import * as F from "./fs.js";
import * as E from "./env.js";
import * as N from "./net.js";
import * as R from "./repl.js";
import * as H from "./host.js";
import * as V from "./volumes.js";

export interface MethodSpec<Params extends TSchema = TSchema, Result extends TSchema = TSchema> {
  summary: string;
  /**
   * Where the call is carried out: by the daemon itself, or by the supervisor inside the sandbox
   * (the daemon forwards its params without `sandbox`, streams renumbered, and checks the result).
   */
  runs: "daemon" | "supervisor";
  params: Params;
  result: Result;
  errors: readonly ErrorCodeName[];
  /** Params naming streams the client writes (inbound to the daemon). */
  inStreams?: readonly string[];
  /** Params naming streams the daemon writes (outbound to the client). */
  outStreams?: readonly string[];
}

const daemon = <P extends TSchema, R extends TSchema>(spec: Omit<MethodSpec<P, R>, "runs">) => ({ ...spec, runs: "daemon" as const });
const supervisor = <P extends TSchema, R extends TSchema>(spec: Omit<MethodSpec<P, R>, "runs">) => ({ ...spec, runs: "supervisor" as const });
const onSandbox = ["InvalidParams", "SandboxNotFound", "Unavailable"] as const;
const onFs = [...onSandbox, "FileSystem"] as const;

/** Every JSON-RPC method a client may call, defined once. */
export const METHODS = {
  "sandbox.create": daemon({
    summary: "Start a new sandbox owned by the calling token.",
    params: S.CreateParams,
    result: S.CreateResult,
    errors: ["InvalidParams", "ResourceLimit", "Unavailable", "InternalError", "VolumeNotFound", "InUse", "Unsupported"],
  }),
  "sandbox.connect": daemon({
    summary: "Attach this connection to a running sandbox (adopting a session sandbox whose creator left).",
    params: S.IdParams,
    result: S.SandboxInfo,
    errors: ["InvalidParams", "SandboxNotFound"],
  }),
  "sandbox.list": daemon({ summary: "List this token's sandboxes.", params: S.ListParams, result: S.ListResult, errors: ["InvalidParams"] }),
  "sandbox.kill": daemon({ summary: "Destroy a sandbox now.", params: S.IdParams, result: Null, errors: ["InvalidParams", "SandboxNotFound"] }),
  "sandbox.extendTimeout": daemon({
    summary: "Set the expiry to a duration from now, as Deno's extendTimeout (a session sandbox becomes a timed one expiring then).",
    params: S.ExtendTimeoutParams,
    result: S.ExtendTimeoutResult,
    errors: ["InvalidParams", "SandboxNotFound"],
  }),
  "sandbox.usage": daemon({
    summary: "CPU, memory, disk and wall time a sandbox used, from the kernel's accounting; also for one that ended recently.",
    params: S.IdParams,
    result: S.Usage,
    errors: ["InvalidParams", "SandboxNotFound"],
  }),
  "sandbox.setAllowNet": daemon({
    summary: "Replace the hosts the sandbox may reach; open connections no longer allowed are closed.",
    params: S.AllowNetParams,
    result: Null,
    errors: ["InvalidParams", "SandboxNotFound"],
  }),
  "sandbox.egressLog": daemon({
    summary: "Recent egress decisions (time, host, port, allowed or why not), oldest first.",
    params: S.EgressLogParams,
    result: S.EgressLogResult,
    errors: ["InvalidParams", "SandboxNotFound"],
  }),
  "sandbox.watchNetwork": daemon({
    summary: "Turn sandbox.network notifications for this sandbox on or off for this connection.",
    params: S.WatchNetworkParams,
    result: Null,
    errors: ["InvalidParams", "SandboxNotFound"],
  }),
  "sandbox.snapshot": daemon({
    summary: "Take a read-only snapshot of a running sandbox's writable storage (its home and /tmp, frozen for the copy): mount it or start a volume from it.",
    params: V.SandboxSnapshotParams,
    result: V.SnapshotInfo,
    errors: ["InvalidParams", "SandboxNotFound", "ResourceLimit", "Unsupported", "InternalError"],
  }),
  "process.spawn": supervisor({
    summary: "Start a process in the sandbox; stdio travels on the named streams.",
    params: P.SpawnParams,
    result: P.SpawnResult,
    errors: [...onSandbox, "SpawnFailed", "ResourceLimit"],
    inStreams: ["stdin"],
    outStreams: ["stdout", "stderr"],
  }),
  "process.kill": supervisor({ summary: "Send a signal to a process (default SIGTERM).", params: P.KillParams, result: Null, errors: [...onSandbox, "ProcessNotFound"] }),
  "process.resize": supervisor({ summary: "Resize the terminal of a process started with a pty.", params: P.ResizeParams, result: Null, errors: [...onSandbox, "ProcessNotFound"] }),
  "process.ports": supervisor({ summary: "TCP ports a running process and its descendants listen on.", params: P.PortsParams, result: P.PortsResult, errors: [...onSandbox, "ProcessNotFound"] }),
  "net.connect": supervisor({
    summary: "Open a TCP connection to a port on the sandbox's loopback: bytes to it on `input`, from it on `output`.",
    params: N.ConnectParams,
    result: Null,
    errors: [...onSandbox, "StreamFailed", "ResourceLimit"],
    inStreams: ["input"],
    outStreams: ["output"],
  }),
  "process.list": daemon({
    summary: "The processes started in the sandbox that a client may attach to: running or recently ended, with what is kept of their output.",
    params: P.ListProcessesParams,
    result: P.ListProcessesResult,
    errors: onSandbox,
  }),
  "process.attach": daemon({
    summary: "Attach to a process's stdout/stderr again (after a reconnect) from byte offsets; this connection then hears its exit.",
    params: P.AttachParams,
    result: P.AttachResult,
    errors: [...onSandbox, "ProcessNotFound"],
    outStreams: ["stdout", "stderr"],
  }),
  "net.exposeHttp": daemon({
    summary: "Expose an HTTP server inside the sandbox at a URL on the daemon's host (authenticated by a token in the URL unless public), until the sandbox ends.",
    params: N.ExposeHttpParams,
    result: N.ExposeHttpResult,
    errors: [...onSandbox, "ResourceLimit"],
  }),
  "repl.start": daemon({
    summary: "Start a stateful REPL (Deno or Python) in the sandbox; what its code prints outside calls travels on stdout/stderr.",
    params: R.ReplStartParams,
    result: R.ReplStartResult,
    errors: [...onSandbox, "SpawnFailed", "ResourceLimit"],
    outStreams: ["stdout", "stderr"],
  }),
  "repl.eval": daemon({
    summary: "Evaluate code in a REPL; the value of its last expression, or the exception it raised.",
    params: R.ReplEvalParams,
    result: R.ReplResult,
    errors: [...onSandbox, "ProcessNotFound"],
  }),
  "repl.call": daemon({
    summary: "Call a function of a REPL (by name, or a function expression) with JSON arguments.",
    params: R.ReplCallParams,
    result: R.ReplResult,
    errors: [...onSandbox, "ProcessNotFound"],
  }),
  "repl.close": daemon({ summary: "End a REPL (its state is lost).", params: R.ReplCloseParams, result: Null, errors: [...onSandbox, "ProcessNotFound"] }),
  "fs.readFile": supervisor({
    summary: "Open a file and stream its bytes on `stream`; resolves with its size once open.",
    params: F.ReadFileParams,
    result: F.ReadFileResult,
    errors: onFs,
    outStreams: ["stream"],
  }),
  "fs.writeFile": supervisor({
    summary: "Write the bytes the client sends on `stream` to a file; resolves once the file is closed.",
    params: F.WriteFileParams,
    result: F.WriteFileResult,
    errors: onFs,
    inStreams: ["stream"],
  }),
  "fs.stat": supervisor({ summary: "File information, following symlinks.", params: F.PathParams, result: F.FileInfo, errors: onFs }),
  "fs.lstat": supervisor({ summary: "File information about a symlink itself.", params: F.PathParams, result: F.FileInfo, errors: onFs }),
  "fs.readDir": supervisor({ summary: "Entries of a directory.", params: F.PathParams, result: F.ReadDirResult, errors: onFs }),
  "fs.mkdir": supervisor({ summary: "Create a directory.", params: F.MkdirParams, result: Null, errors: onFs }),
  "fs.remove": supervisor({ summary: "Remove a file, symlink or (with recursive) a directory tree.", params: F.RemoveParams, result: Null, errors: onFs }),
  "fs.rename": supervisor({ summary: "Rename or move a path.", params: F.RenameParams, result: Null, errors: onFs }),
  "fs.copyFile": supervisor({ summary: "Copy a file.", params: F.CopyFileParams, result: Null, errors: onFs }),
  "fs.chmod": supervisor({ summary: "Change permission bits.", params: F.ChmodParams, result: Null, errors: onFs }),
  "fs.symlink": supervisor({ summary: "Create a symlink at `path` pointing to `target`.", params: F.SymlinkParams, result: Null, errors: onFs }),
  "fs.readLink": supervisor({ summary: "Target of a symlink.", params: F.PathParams, result: F.PathResult, errors: onFs }),
  "fs.realPath": supervisor({ summary: "Absolute path with every symlink resolved.", params: F.PathParams, result: F.PathResult, errors: onFs }),
  "fs.makeTempDir": supervisor({ summary: "Create a new uniquely named directory (under /tmp by default).", params: F.MakeTempDirParams, result: F.PathResult, errors: onFs }),
  "fs.makeTempFile": supervisor({ summary: "Create a new uniquely named empty file (under /tmp by default).", params: F.MakeTempFileParams, result: F.PathResult, errors: onFs }),
  "fs.link": supervisor({ summary: "Create `path` as a hard link to `target`.", params: F.LinkParams, result: Null, errors: onFs }),
  "fs.truncate": supervisor({ summary: "Truncate (or extend) a file to `len` bytes (default 0).", params: F.TruncateParams, result: Null, errors: onFs }),
  "fs.umask": supervisor({
    summary: "The umask of the sandbox's file calls and of processes spawned later; with `mask`, set it. Returns the one before.",
    params: F.UmaskParams,
    result: F.UmaskResult,
    errors: onSandbox,
  }),
  "fs.utime": supervisor({ summary: "Set a file's access and modification times (seconds since the epoch).", params: F.UtimeParams, result: Null, errors: onFs }),
  "fs.chown": supervisor({ summary: "Change a file's owner and group (null leaves one unchanged).", params: F.ChownParams, result: Null, errors: onFs }),
  "fs.open": supervisor({
    summary: "Open a file; the handle is this connection's until fs.fileClose or until the connection closes (a sandbox holds at most 256).",
    params: F.OpenParams,
    result: F.OpenResult,
    errors: [...onFs, "ResourceLimit"],
  }),
  "fs.fileRead": supervisor({
    summary: "Read up to `length` bytes at the handle's position and send them on `stream`.",
    params: F.FileReadParams,
    result: F.FileReadResult,
    errors: onFs,
    outStreams: ["stream"],
  }),
  "fs.fileWrite": supervisor({
    summary: "Write the bytes the client sends on `stream` at the handle's position; resolves once all are written.",
    params: F.FileWriteParams,
    result: F.WriteFileResult,
    errors: [...onFs, "StreamFailed"],
    inStreams: ["stream"],
  }),
  "fs.fileSeek": supervisor({ summary: "Move the handle's position; returns the new one.", params: F.FileSeekParams, result: F.FileSeekResult, errors: onFs }),
  "fs.fileStat": supervisor({ summary: "File information of an open file.", params: F.HandleParams, result: F.FileInfo, errors: onFs }),
  "fs.fileTruncate": supervisor({ summary: "Truncate (or extend) an open file to `len` bytes (default 0).", params: F.FileTruncateParams, result: Null, errors: onFs }),
  "fs.fileSync": supervisor({ summary: "Flush an open file's data (and metadata, unless dataOnly) to disk.", params: F.FileSyncParams, result: Null, errors: onFs }),
  "fs.fileUtime": supervisor({ summary: "Set an open file's access and modification times.", params: F.FileUtimeParams, result: Null, errors: onFs }),
  "fs.fileLock": supervisor({
    summary: "Take an advisory lock (flock) on an open file without waiting: EAGAIN while another holds it.",
    params: F.FileLockParams,
    result: Null,
    errors: onFs,
  }),
  "fs.fileUnlock": supervisor({ summary: "Release an advisory lock.", params: F.HandleParams, result: Null, errors: onFs }),
  "fs.fileClose": supervisor({ summary: "Close an open file.", params: F.HandleParams, result: Null, errors: onFs }),
  "fs.upload": supervisor({
    summary: "Extract the tar archive the client sends on `stream` into the directory `path` (created if missing).",
    params: F.UploadParams,
    result: F.UploadResult,
    errors: [...onFs, "StreamFailed"],
    inStreams: ["stream"],
  }),
  "fs.download": supervisor({
    summary: "Stream the tree at `path` as a tar archive on `stream`; resolves once it is all sent.",
    params: F.DownloadParams,
    result: F.DownloadResult,
    errors: [...onFs, "StreamFailed"],
    outStreams: ["stream"],
  }),
  "env.get": daemon({ summary: "A variable of the environment a process spawned now starts with (the base one included), or null.", params: E.EnvGetParams, result: E.EnvGetResult, errors: onSandbox }),
  "env.set": daemon({ summary: "Set a variable for processes spawned later.", params: E.EnvSetParams, result: Null, errors: onSandbox }),
  "env.delete": daemon({ summary: "Remove a variable (set, or of the base environment) for processes spawned later.", params: E.EnvDeleteParams, result: Null, errors: onSandbox }),
  "env.toObject": daemon({ summary: "The whole environment a process spawned now starts with (the base one included).", params: E.EnvToObjectParams, result: E.EnvToObjectResult, errors: onSandbox }),
  "daemon.info": daemon({
    summary: "What this daemon is and how full its host is: version, mode, id prefix, whether it drains, live sandboxes and their caps against the host's memory, disk and CPUs. Operator token only.",
    params: Empty,
    result: H.DaemonInfo,
    errors: ["Forbidden"],
  }),
  "daemon.drain": daemon({
    summary: "Stop (or resume) accepting new sandboxes; running ones go on until they end or time out. Operator token only.",
    params: H.DrainParams,
    result: H.DaemonInfo,
    errors: ["InvalidParams", "Forbidden"],
  }),
  "volume.create": daemon({
    summary: "Make a volume owned by the calling token: an empty ext4 file system of `capacity` bytes, or a copy of snapshot `from`.",
    params: V.VolumeCreateParams,
    result: V.VolumeInfo,
    errors: ["InvalidParams", "ResourceLimit", "VolumeNotFound", "InUse", "Unsupported", "InternalError"],
  }),
  "volume.get": daemon({ summary: "A volume of this token by id or slug (the SDKs' get answers null for VolumeNotFound).", params: V.IdOrSlugParams, result: V.VolumeInfo, errors: ["InvalidParams", "VolumeNotFound", "Unsupported"] }),
  "volume.list": daemon({ summary: "This token's volumes, oldest first, a page at a time.", params: V.ListOptions, result: V.VolumeListResult, errors: ["InvalidParams", "Unsupported"] }),
  "volume.delete": daemon({ summary: "Delete a volume and its data; refused while a sandbox has it mounted.", params: V.IdOrSlugParams, result: Null, errors: ["InvalidParams", "VolumeNotFound", "InUse", "Unsupported"] }),
  "volume.resize": daemon({
    summary: "Grow or shrink a volume's file system to `capacity`; refused while mounted, or below what its data needs.",
    params: V.VolumeResizeParams,
    result: V.VolumeInfo,
    errors: ["InvalidParams", "VolumeNotFound", "InUse", "Unsupported", "InternalError"],
  }),
  "volume.snapshot": daemon({
    summary: "Take a read-only snapshot of a volume; refused while a sandbox has the volume mounted.",
    params: V.VolumeSnapshotParams,
    result: V.SnapshotInfo,
    errors: ["InvalidParams", "ResourceLimit", "VolumeNotFound", "InUse", "Unsupported", "InternalError"],
  }),
  "snapshot.get": daemon({ summary: "A snapshot of this token by id or slug (the SDKs' get answers null for VolumeNotFound).", params: V.IdOrSlugParams, result: V.SnapshotInfo, errors: ["InvalidParams", "VolumeNotFound", "Unsupported"] }),
  "snapshot.list": daemon({ summary: "This token's snapshots, oldest first, a page at a time.", params: V.ListOptions, result: V.SnapshotListResult, errors: ["InvalidParams", "Unsupported"] }),
  "snapshot.delete": daemon({ summary: "Delete a snapshot; refused while a sandbox has it mounted or a volume is being made from it.", params: V.IdOrSlugParams, result: Null, errors: ["InvalidParams", "VolumeNotFound", "InUse", "Unsupported"] }),
  "image.build": daemon({
    summary:
      "Build a root image from Debian's packages (mmdebstrap minbase of `suite` plus `packages`, from the daemon's mirror) into a new read-only snapshot owned by the calling token, with isBootable true. Takes tens of seconds; image.progress notifications carry the builder's progress lines to this connection. A failed build leaves nothing behind.",
    params: V.ImageBuildParams,
    result: V.SnapshotInfo,
    errors: ["InvalidParams", "ResourceLimit", "Unavailable", "Unsupported", "InternalError"],
  }),
  "rpc.discover": daemon({ summary: "This document.", params: Empty, result: Type.Any(), errors: [] }),
} as const;

/** Notifications the daemon sends to clients. */
export const NOTIFICATIONS = {
  "process.exit": { summary: "A process ended.", params: P.ProcessExitNotification },
  "sandbox.exit": { summary: "A sandbox this connection used has stopped.", params: S.SandboxExitNotification },
  "sandbox.network": { summary: "An egress decision in a sandbox this connection watches.", params: S.NetworkNotification },
  "image.progress": { summary: "A progress line of an image.build this connection called.", params: V.ImageProgressNotification },
} as const;

export type Methods = typeof METHODS;
export type MethodName = keyof Methods;
export type ParamsOf<M extends MethodName> = Static<Methods[M]["params"]>;
export type ResultOf<M extends MethodName> = Static<Methods[M]["result"]>;
export type NotificationName = keyof typeof NOTIFICATIONS;
export type NotificationParams<N extends NotificationName> = Static<(typeof NOTIFICATIONS)[N]["params"]>;
/** Methods the supervisor inside the sandbox carries out. */
export type SupervisorMethodName = { [M in MethodName]: Methods[M]["runs"] extends "supervisor" ? M : never }[MethodName];
/** Methods the daemon carries out itself. */
export type DaemonMethodName = Exclude<MethodName, SupervisorMethodName>;
/** The names of the supervisor's methods, at run time. */
export const SUPERVISOR_METHODS = (Object.keys(METHODS) as MethodName[]).filter((m) => METHODS[m].runs === "supervisor") as SupervisorMethodName[];
