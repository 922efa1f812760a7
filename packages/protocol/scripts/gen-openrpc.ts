// Regenerate with `pnpm gen` (writes packages/protocol/openrpc.json); `pnpm check:generated` fails when it is stale.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildOpenRpc } from "../src/openrpc.js";

const target = fileURLToPath(new URL("../openrpc.json", import.meta.url));
const text = JSON.stringify(buildOpenRpc(), null, 2) + "\n";
if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(target, "utf8");
  } catch {}
  if (current !== text) {
    console.error("packages/protocol/openrpc.json is stale: run `pnpm gen` and commit the result.");
    process.exit(1);
  }
  console.log("openrpc.json is up to date");
} else {
  writeFileSync(target, text);
  console.log(`wrote ${target}`);
}
