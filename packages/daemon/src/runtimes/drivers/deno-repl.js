// sbx's Deno REPL driver, bound read-only into every sandbox at /.sbx/repl/deno.js and started by
// the daemon (repl.start). Requests arrive as JSON lines on fd 3, replies leave on fd 4, so nothing
// the user's code prints can pass for a reply. State lives in this one isolate: code runs through
// the inspector in REPL mode (top-level await, let/const kept across calls, the completion value
// returned), TypeScript types stripped first.
import inspector from "node:inspector";
import { stripTypeScriptTypes } from "node:module";

const MAX_VALUE = 16 << 20;
const SLOT = `__sbx_${crypto.randomUUID().replaceAll("-", "")}`;
const session = new inspector.Session();
session.connect();
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
const { result: globalRef } = await post("Runtime.evaluate", { expression: "globalThis" });

/** The value a RemoteObject stands for, brought into this realm. */
async function local(remote) {
  if (remote.type === "undefined") return undefined;
  const arg = remote.objectId ? { objectId: remote.objectId } : remote.unserializableValue ? { unserializableValue: remote.unserializableValue } : { value: remote.value };
  await post("Runtime.callFunctionOn", { objectId: globalRef.objectId, functionDeclaration: `function (v) { this[${JSON.stringify(SLOT)}] = v; }`, arguments: [arg] });
  const v = globalThis[SLOT];
  delete globalThis[SLOT];
  return v;
}

function strip(code) {
  try {
    return stripTypeScriptTypes(code, { mode: "transform" });
  } catch {
    return code; // not TypeScript either: V8 reports the syntax error
  }
}

class Thrown {
  constructor(value) {
    this.value = value;
  }
}

async function evaluate(code) {
  const res = await post("Runtime.evaluate", { expression: strip(code), replMode: true, awaitPromise: true, objectGroup: "sbx" });
  try {
    if (res.exceptionDetails) throw new Thrown(res.exceptionDetails.exception ? await local(res.exceptionDetails.exception) : new Error(res.exceptionDetails.text));
    return await local(res.result);
  } finally {
    await post("Runtime.releaseObjectGroup", { objectGroup: "sbx" });
  }
}

/** The wire form of a value: JSON, with {"$": tag} objects for what JSON cannot say (see decodeValue in the SDKs). */
function encode(root) {
  const seen = new Map();
  let nodes = 0;
  const enc = (v, depth) => {
    if (++nodes > 1_000_000 || depth > 1000) throw new RangeError("the value is too large or too deep to return");
    switch (typeof v) {
      case "string":
      case "boolean":
        return v;
      case "number":
        return Number.isFinite(v) && !Object.is(v, -0) ? v : { $: "num", v: Object.is(v, -0) ? "-0" : String(v) };
      case "bigint":
        return { $: "bigint", v: v.toString() };
      case "undefined":
        return { $: "undefined" };
      case "symbol":
        return { $: "repr", v: v.toString() };
      case "function":
        return { $: "repr", v: `[Function: ${v.name || "(anonymous)"}]` };
    }
    if (v === null) return null;
    if (seen.has(v)) return { $: "ref", v: seen.get(v) };
    if (v instanceof Date) return { $: "date", v: v.getTime() };
    if (v instanceof RegExp) return { $: "regexp", source: v.source, flags: v.flags };
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
      const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      let bin = "";
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return { $: "bytes", v: btoa(bin) };
    }
    if (v instanceof Error) return { $: "error", name: v.name, message: v.message, stack: v.stack ?? "" };
    seen.set(v, seen.size);
    if (Array.isArray(v)) return v.map((x) => enc(x, depth + 1));
    if (v instanceof Map) return { $: "map", v: [...v].map(([k, x]) => [enc(k, depth + 1), enc(x, depth + 1)]) };
    if (v instanceof Set) return { $: "set", v: [...v].map((x) => enc(x, depth + 1)) };
    // Anything else (class instances included) as a plain object of its own enumerable properties.
    const entries = Object.entries(v).map(([k, x]) => [k, enc(x, depth + 1)]);
    if (entries.some(([k]) => k === "$")) return { $: "obj", v: entries };
    return Object.fromEntries(entries);
  };
  return enc(root, 0);
}

/** The stack as far as the user's code goes: the driver's own frames are cut off. */
function userStack(stack) {
  const lines = String(stack ?? "").split("\n");
  const end = lines.findIndex((l) => /ext:deno_node\/inspector|\/\.sbx\/repl\//.test(l));
  return (end < 0 ? lines : lines.slice(0, end)).join("\n");
}

function describe(err) {
  if (err instanceof Error) return { type: err.name || err.constructor?.name || "Error", message: String(err.message), traceback: userStack(err.stack) };
  return { type: "Uncaught", message: (() => { try { return typeof err === "string" ? err : JSON.stringify(err) ?? String(err); } catch { return String(err); } })(), traceback: "" };
}

async function handle(req) {
  try {
    let value;
    if (req.op === "eval") value = await evaluate(req.code);
    else if (req.op === "call") {
      const fn = await evaluate(req.fn);
      if (typeof fn !== "function") throw new TypeError(`${req.fn.slice(0, 80)} is not a function`);
      value = await fn(...req.args);
    } else throw new Error(`unknown request ${req.op}`);
    const out = { id: req.id, ok: true, value: encode(value), repr: null, stdout: "", stderr: "" };
    const line = JSON.stringify(out);
    if (line.length > MAX_VALUE) throw new RangeError(`the value is ${line.length} bytes as JSON, more than the ${MAX_VALUE} a call may return`);
    return line;
  } catch (e) {
    return JSON.stringify({ id: req.id, ok: false, error: describe(e instanceof Thrown ? e.value : e), stdout: "", stderr: "" });
  }
}

const input = await Deno.open("/dev/fd/3", { read: true });
const output = await Deno.open("/dev/fd/4", { write: true });
const encoder = new TextEncoder();
const send = async (line) => {
  const bytes = encoder.encode(line + "\n");
  for (let off = 0; off < bytes.length; ) off += await output.write(bytes.subarray(off));
};
await send(JSON.stringify({ t: "ready" }));
const decoder = new TextDecoder();
let pending = "";
const buf = new Uint8Array(64 * 1024);
for (;;) {
  const n = await input.read(buf);
  if (n === null) break;
  pending += decoder.decode(buf.subarray(0, n), { stream: true });
  let nl;
  while ((nl = pending.indexOf("\n")) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    await send(await handle(JSON.parse(line)));
  }
}
Deno.exit(0);
