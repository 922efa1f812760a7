#!/usr/bin/env node
// Writes the Python package's generated modules from the protocol's OpenRPC document:
//   python/src/sbx/_generated/models.py   typed models of every params/result/notification shape
//   python/src/sbx/_generated/methods.py  the sync and async method layers, from one template
//   python/src/sbx/_sync/*.py             the sync ergonomic layer, derived from python/src/sbx/_async/*.py
//                                         (all but transport.py: each flavour's driver is written by hand)
// With --check it writes nothing and fails when any committed file differs.
// The work is in ./lib: names, shapes (schema -> Python types), collect, one emitter per file, unasync.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { collectMethods, collectNotifications } from "./lib/collect.mjs";
import { emitMethods } from "./lib/emit-methods.mjs";
import { emitModels } from "./lib/emit-models.mjs";
import { writeAll } from "./lib/output.mjs";
import { createShapes } from "./lib/shapes.mjs";
import { syncLayer } from "./lib/unasync.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = join(root, "python", "src", "sbx");

function openrpcPath() {
  try {
    return createRequire(join(root, "package.json")).resolve("@sbx/protocol/openrpc.json");
  } catch {
    return join(root, "..", "protocol", "openrpc.json");
  }
}
const doc = JSON.parse(readFileSync(openrpcPath(), "utf8"));

// Methods first, then notifications: the order models are met in is the order models.py declares them.
const shapes = createShapes();
const methods = collectMethods(doc, shapes);
const notifications = collectNotifications(doc, shapes);

const files = new Map([
  [join(pkg, "_generated", "models.py"), emitModels(doc, shapes, methods, notifications)],
  [join(pkg, "_generated", "methods.py"), emitMethods(shapes, methods)],
  ...syncLayer(pkg),
]);

const check = process.argv.includes("--check");
if (writeAll(files, root, check) && check) {
  console.error("run `pnpm --filter @sbx/python-bridge gen` and commit the result");
  process.exit(1);
}
