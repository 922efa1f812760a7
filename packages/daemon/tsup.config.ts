import { defineConfig } from "tsup";

export default defineConfig([
  {
    entry: { index: "src/index.ts", cli: "src/cli.ts" },
    format: ["esm"],
    dts: { entry: { index: "src/index.ts" } },
    clean: true,
    sourcemap: true,
    target: "node20",
    banner: { js: "" },
  },
  {
    // The supervisor runs inside sandboxes with nothing but the node binary: bundle everything.
    entry: { supervisor: "src/supervisor/main.ts" },
    format: ["esm"],
    outExtension: () => ({ js: ".mjs" }),
    noExternal: [/.*/],
    splitting: false,
    platform: "node",
    target: "node20",
    minify: true,
    clean: false,
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  },
]);
