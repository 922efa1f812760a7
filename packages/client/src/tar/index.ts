/**
 * Safe tar packing and unpacking, as used by `sandbox.fs.upload` and `download`.
 * @module
 */
export { packTree, type PackResult } from "./pack.js";
export { unpackTar, type UnpackOptions, type UnpackResult } from "./unpack.js";
export { TarEntryError } from "./names.js";
