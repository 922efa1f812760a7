/** `sandbox.fs`: the class, `FsFile`, and the shapes they take and give. */
export { SandboxFs } from "./sandbox-fs.js";
export { FsFile, SeekMode } from "./file.js";
export { globToRegExp } from "./glob.js";
export {
  DEFAULT_MAX_READ_BYTES,
  DEFAULT_MAX_DOWNLOAD_BYTES,
  type FileInfo, type DirEntry, type WalkEntry, type WalkOptions, type ExpandGlobOptions, type WriteFileOptions, type FileData, type ReadFileOptions,
  type DownloadOptions, type MkdirOptions, type RemoveOptions, type OpenOptions, type PathLike,
} from "./types.js";
