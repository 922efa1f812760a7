export * from "./common.js";
export * from "./errors.js";
export * from "./frames.js";
export * from "./methods.js";
export * from "./validate.js";
export * from "./openrpc.js";
export * from "./paths.js";
export * from "./units.js";
export * as schemas from "./schemas.js";
