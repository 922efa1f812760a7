import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";

const version = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")).version as string;
const define = { __SBX_VERSION__: JSON.stringify(version) };

/** Lets bundled CommonJS dependencies (ws) call require() from an ES module. */
const requireShim = "import { createRequire as __sbxCreateRequire } from 'node:module'; const require = __sbxCreateRequire(import.meta.url);";

export default defineConfig([
  {
    entry: { index: "src/index.ts" },
    format: ["esm"],
    dts: true,
    clean: true,
    define,
    sourcemap: true,
    target: "node20",
  },
  {
    // The CLI is one self-contained file beside the native binaries (built by `make -C native dist`
    // after tsup, whose first config empties dist/): copy dist/ anywhere and run.
    // bufferutil is an optional native speed-up ws loads when it can: it must stay a runtime
    // require (noExternal would win over `external` and bundle its JS, whose addon lookup from
    // dist/ always fails, leaving ws to unmask every client frame in JavaScript).
    entry: { cli: "src/cli.ts" },
    format: ["esm"],
    noExternal: [/^(?!bufferutil$|utf-8-validate$)/],
    external: ["bufferutil", "utf-8-validate"],
    splitting: false,
    platform: "node",
    target: "node20",
    sourcemap: true,
    clean: false,
    define,
    banner: { js: `#!/usr/bin/env node\n${requireShim}` },
  },
  {
    // Preloaded into Node processes inside sandboxes so fetch and http(s) use the egress proxy.
    entry: { "node-proxy": "src/preload/node-proxy.ts", "node-proxy-impl": "src/preload/node-proxy-impl.ts" },
    format: ["cjs"],
    outExtension: () => ({ js: ".cjs" }),
    noExternal: [/.*/],
    splitting: false,
    platform: "node",
    target: "node18",
    minify: true,
    clean: false,
  },
]);
