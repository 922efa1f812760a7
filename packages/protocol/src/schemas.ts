export * from "./sandbox.js";
export * from "./process.js";
export * from "./fs.js";
export * from "./env.js";
export * from "./repl.js";
export * from "./net.js";
export * from "./host.js";
export * from "./volumes.js";
