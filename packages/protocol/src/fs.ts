import { Type } from "@sinclair/typebox";
import { FileMode, Obj, Path, SandboxId, StreamId } from "./common.js";

const Target = { sandbox: SandboxId, path: Path };

export const FileInfo = Obj({
  isFile: Type.Boolean(),
  isDirectory: Type.Boolean(),
  isSymlink: Type.Boolean(),
  size: Type.Integer({ minimum: 0 }),
  mtime: Type.Union([Type.Number(), Type.Null()], { description: "Milliseconds since the epoch." }),
  atime: Type.Union([Type.Number(), Type.Null()]),
  birthtime: Type.Union([Type.Number(), Type.Null()]),
  mode: Type.Integer({ minimum: 0, description: "Permission bits (mode & 0o7777)." }),
  uid: Type.Integer({ minimum: 0 }),
  gid: Type.Integer({ minimum: 0 }),
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
export const UploadParams = Obj({ ...Target, stream: StreamId });
export const UploadResult = Obj({ entries: Type.Integer({ minimum: 0 }), bytes: Type.Integer({ minimum: 0 }) });
export const DownloadParams = Obj({ ...Target, stream: StreamId });
export const DownloadResult = Obj({ entries: Type.Integer({ minimum: 0 }), bytes: Type.Integer({ minimum: 0 }) });
