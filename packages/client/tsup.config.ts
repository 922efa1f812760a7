import { defineConfig } from "tsup";

export default defineConfig({
  entry: { index: "src/index.ts", "tar/index": "src/tar/index.ts" },
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
  // embedded.ts finds @sbx/daemon from this module's own location (import.meta.url); the CJS
  // build needs tsup's shim for that, or the lookup silently finds nothing there.
  shims: true,
});
