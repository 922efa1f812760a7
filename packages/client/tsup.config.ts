import { defineConfig } from "tsup";

export default defineConfig({
  entry: { index: "src/index.ts", "tar/index": "src/tar/index.ts" },
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
});
