import { Type } from "@sinclair/typebox";
import { FileMode, Obj, Path, SandboxId, StreamId } from "./common.js";

const Target = { sandbox: SandboxId, path: Path };

const Count = (description?: string) => Type.Integer({ minimum: 0, ...(description ? { description } : {}) });
const Millis = (description: string) => Type.Number({ description });

/** What stat(2) says of a file, with the fields and meanings of Deno's `FileInfo`. */
export const FileInfo = Obj({
  isFile: Type.Boolean(),
  isDirectory: Type.Boolean(),
  isSymlink: Type.Boolean(),
  isBlockDevice: Type.Boolean(),
  isCharDevice: Type.Boolean(),
  isFifo: Type.Boolean(),
  isSocket: Type.Boolean(),
  size: Count(),
  mtime: Millis("Last modification, in milliseconds since the epoch."),
  atime: Millis("Last access, in milliseconds since the epoch."),
  ctime: Millis("Last status change, in milliseconds since the epoch."),
  birthtime: Type.Union([Type.Number(), Type.Null()], { description: "Creation, in milliseconds since the epoch; null where the file system does not record it." }),
  mode: Count("The raw st_mode: file type and permission bits (mode & 0o7777 for the permissions alone)."),
  dev: Count("Device of the file system holding the file."),
  ino: Count("Inode number."),
  nlink: Count("Number of hard links."),
  uid: Count(),
  gid: Count(),
  rdev: Count("Device number, for a device file."),
  blksize: Count("Block size for file system I/O."),
  blocks: Count("Blocks allocated, in 512-byte units."),
});

export const DirEntry = Obj({
  name: Type.String({ minLength: 1, maxLength: 4096 }),
  isFile: Type.Boolean(),
  isDirectory: Type.Boolean(),
  isSymlink: Type.Boolean(),
});

export const PathParams = Obj(Target);
export const ReadFileParams = Obj({ ...Target, stream: StreamId });
export const ReadFileResult = Obj({ size: Type.Integer({ minimum: 0 }) });
export const WriteFileParams = Obj({
  ...Target,
  stream: StreamId,
  mode: Type.Optional(FileMode),
  append: Type.Optional(Type.Boolean()),
  create: Type.Optional(Type.Boolean({ description: "Create the file if missing (default true)." })),
  createNew: Type.Optional(Type.Boolean({ description: "Fail if the file already exists." })),
});
export const WriteFileResult = Obj({ bytesWritten: Type.Integer({ minimum: 0 }) });
export const ReadDirResult = Type.Array(DirEntry, { maxItems: 100000 });
export const MkdirParams = Obj({ ...Target, recursive: Type.Optional(Type.Boolean()), mode: Type.Optional(FileMode) });
export const RemoveParams = Obj({ ...Target, recursive: Type.Optional(Type.Boolean()) });
export const RenameParams = Obj({ sandbox: SandboxId, from: Path, to: Path });
export const CopyFileParams = RenameParams;
export const ChmodParams = Obj({ ...Target, mode: FileMode });
export const SymlinkParams = Obj({ sandbox: SandboxId, target: Path, path: Path });
export const PathResult = Path;
export const MakeTempDirParams = Obj({
  sandbox: SandboxId,
  dir: Type.Optional(Path),
  prefix: Type.Optional(Type.String({ maxLength: 255, pattern: "^[^/\\u0000]*$", errorMessage: "must not contain '/' or NUL bytes" })),
  suffix: Type.Optional(Type.String({ maxLength: 255, pattern: "^[^/\\u0000]*$", errorMessage: "must not contain '/' or NUL bytes" })),
});
export const MakeTempFileParams = MakeTempDirParams;
export const LinkParams = Obj({ sandbox: SandboxId, target: Path, path: Path });
const Length = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: "Bytes (0 when absent)." });
export const TruncateParams = Obj({ ...Target, len: Type.Optional(Length) });
export const UmaskParams = Obj({ sandbox: SandboxId, mask: Type.Optional(Type.Integer({ minimum: 0, maximum: 0o777, description: "The new umask; absent: only read it." })) });
export const UmaskResult = Type.Integer({ minimum: 0, maximum: 0o777, description: "The umask before the call." });
const Seconds = Type.Number({ minimum: -1e11, maximum: 1e11, description: "Seconds since the epoch (fractions allowed)." });
export const UtimeParams = Obj({ ...Target, atime: Seconds, mtime: Seconds });
const Id = Type.Union([Type.Integer({ minimum: 0, maximum: 0xfffffffe }), Type.Null()], { description: "A numeric id, or null to leave it unchanged." });
export const ChownParams = Obj({ ...Target, uid: Id, gid: Id });

/** A file opened with fs.open: its number in the sandbox, usable only on the connection that opened it. */
export const Handle = Type.Integer({ minimum: 1, maximum: 0x7fffffff, description: "A handle from fs.open; only the connection that opened it may use it." });
export const OpenParams = Obj({
  ...Target,
  read: Type.Optional(Type.Boolean({ description: "Open for reading (default true)." })),
  write: Type.Optional(Type.Boolean({ description: "Open for writing (default false)." })),
  append: Type.Optional(Type.Boolean({ description: "Writes go to the end (implies write)." })),
  truncate: Type.Optional(Type.Boolean({ description: "Empty an existing file (needs write)." })),
  create: Type.Optional(Type.Boolean({ description: "Create the file if missing (needs write or append)." })),
  createNew: Type.Optional(Type.Boolean({ description: "Fail if anything exists at the path (needs write or append)." })),
  mode: Type.Optional(FileMode),
});
export const OpenResult = Obj({ handle: Handle });
const OnHandle = { sandbox: SandboxId, handle: Handle };
export const HandleParams = Obj(OnHandle);
/** The most bytes one fs.fileRead returns. */
export const MAX_FILE_READ = 1 << 20;
export const FileReadParams = Obj({ ...OnHandle, length: Type.Integer({ minimum: 1, maximum: MAX_FILE_READ }), stream: StreamId });
export const FileReadResult = Obj({
  bytes: Type.Integer({ minimum: 0, maximum: MAX_FILE_READ, description: "Bytes sent on the stream." }),
  eof: Type.Boolean({ description: "Nothing was read because the file ended (0 bytes without eof: nothing to read yet)." }),
});
export const FileWriteParams = Obj({ ...OnHandle, stream: StreamId });
export const FileSeekParams = Obj({
  ...OnHandle,
  offset: Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }),
  whence: Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)], { description: "0: from the start, 1: from the current position, 2: from the end." }),
});
export const FileSeekResult = Obj({ position: Type.Integer({ minimum: 0 }) });
export const FileTruncateParams = Obj({ ...OnHandle, len: Type.Optional(Length) });
export const FileSyncParams = Obj({ ...OnHandle, dataOnly: Type.Optional(Type.Boolean({ description: "fdatasync instead of fsync." })) });
export const FileUtimeParams = Obj({ ...OnHandle, atime: Seconds, mtime: Seconds });
export const FileLockParams = Obj({ ...OnHandle, exclusive: Type.Optional(Type.Boolean()) });

export const UploadParams = Obj({ ...Target, stream: StreamId });
export const UploadResult = Obj({ entries: Type.Integer({ minimum: 0 }), bytes: Type.Integer({ minimum: 0 }) });
export const DownloadParams = Obj({ ...Target, stream: StreamId });
export const DownloadResult = Obj({ entries: Type.Integer({ minimum: 0 }), bytes: Type.Integer({ minimum: 0 }) });
