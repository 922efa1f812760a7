import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";

const version = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")).version as string;
const define = { __SBX_GATEWAY_VERSION__: JSON.stringify(version) };

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
    // The CLI is one self-contained file: a container image needs node and this file only.
    entry: { cli: "src/cli.ts" },
    format: ["esm"],
    noExternal: [/.*/],
    external: ["bufferutil", "utf-8-validate"],
    splitting: false,
    platform: "node",
    target: "node20",
    sourcemap: true,
    clean: false,
    define,
    banner: { js: `#!/usr/bin/env node\n${requireShim}` },
  },
]);
