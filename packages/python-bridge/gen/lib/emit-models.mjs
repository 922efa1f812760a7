// models.py: a TypedDict or frozen dataclass per shape, the protocol's constants and decoders.
import { HEADER, docLine, pyStr, source } from "./python.mjs";
import { toWireOut } from "./shapes.mjs";

// Named aliases for types the ergonomic layer spells out (taken from where the schema defines them).
const ALIASES = { Signal: ["process.kill", "signal"] };

/** The text of models.py. */
export function emitModels(doc, shapes, methods, notifications) {
  const { out, text } = source();
  out(HEADER);
  out(`"""Typed models of every params, result and notification shape of the sbx protocol (${doc.info.title} ${doc.info.version})."""`);
  out();
  out("from __future__ import annotations");
  out();
  out("from dataclasses import dataclass");
  out("from typing import Any, Literal, TypedDict");
  out();
  out("__all__ = [");
  for (const m of shapes.order) out(`    ${pyStr(m.name)},`);
  out('    "Signal",');
  out('    "ERROR_CODES",');
  out('    "NOTIFICATION_DECODERS",');
  out('    "STREAM_WINDOW",');
  out('    "CREDIT_BATCH",');
  out('    "MAX_CHUNK",');
  out('    "FRAME_HEADER",');
  out('    "SANDBOX_HOME",');
  out('    "SANDBOX_HOME_ALIAS",');
  out('    "SANDBOX_ID_PATTERN",');
  out('    "SANDBOX_ID_MAX_LENGTH",');
  out('    "HOST_LOST_CLOSE",');
  out("]");
  out();
  const frames = doc["x-stream-frames"];
  out(`#: Bytes a sender may have in flight per stream before it waits for CREDIT.`);
  out(`STREAM_WINDOW = ${frames.window}`);
  out(`#: Receivers grant credit in batches of this many bytes (fewer frames), below any stream's smallest window.`);
  out(`CREDIT_BATCH = ${frames.creditBatch}`);
  out(`#: Largest DATA payload in one frame.`);
  out(`MAX_CHUNK = ${frames.maxChunk}`);
  out(`FRAME_HEADER = ${frames.headerBytes}`);
  const sandbox = doc["x-sandbox"];
  out(`#: The sandbox user's home: where processes start and relative paths resolve.`);
  out(`SANDBOX_HOME = ${pyStr(sandbox.home)}`);
  out(`#: The home's other name (the same directory, bound there).`);
  out(`SANDBOX_HOME_ALIAS = ${pyStr(sandbox.homeAlias)}`);
  const bind = doc["x-bind"];
  out(`#: A sandbox id as daemons make them (at most SANDBOX_ID_MAX_LENGTH characters): what a connection's \`bind\` accepts.`);
  out(`SANDBOX_ID_PATTERN = ${pyStr(bind.idPattern)}`);
  out(`SANDBOX_ID_MAX_LENGTH = ${bind.idMaxLength}`);
  out(`#: The close code a gateway ends a bound connection with when its sandbox's host is lost (reason "host lost: ...").`);
  out(`HOST_LOST_CLOSE = ${bind.hostLostClose}`);
  out();
  for (const [alias, [method, param]] of Object.entries(ALIASES)) {
    const p = methods.find((m) => m.name === method)?.params.find((x) => x.wire === param);
    if (!p) throw new Error(`alias ${alias}: ${method} has no param ${param}`);
    out(`${alias} = ${p.type}`);
  }
  out();
  out("#: JSON-RPC error codes by their stable name.");
  out("ERROR_CODES: dict[str, int] = {");
  for (const [name, e] of Object.entries(doc.components.errors)) out(`    ${pyStr(name)}: ${e.code},`);
  out("}");

  for (const m of shapes.order) {
    out();
    out();
    if (m.side === "in") emitTypedDict(out, shapes, m);
    else emitDataclass(out, shapes, m);
  }

  out();
  out();
  out("#: Decoders of the notifications the daemon sends, by method name.");
  out("NOTIFICATION_DECODERS: dict[str, Any] = {");
  for (const n of notifications) out(`    ${pyStr(n.name)}: ${n.model.name}.from_wire,`);
  out("}");
  return text();
}

/** An "in" shape: a TypedDict the caller builds, and the function mapping it to wire names. */
function emitTypedDict(out, shapes, m) {
  const summary = m.schema.description ?? `The ${m.name} shape.`;
  const req = m.fields.filter((f) => f.required);
  const opt = m.fields.filter((f) => !f.required);
  // Required keys in a total base class, optional ones in a total=False subclass (Python 3.10 has no NotRequired).
  const baseName = opt.length && req.length ? `_${m.name}Required` : null;
  if (baseName) {
    out(`class ${baseName}(TypedDict):`);
    for (const f of req) out(`    ${f.py}: ${f.type}`);
    out();
    out();
  }
  out(`class ${m.name}(${baseName ?? "TypedDict"}${opt.length ? ", total=False" : ""}):`);
  out(`    """${docLine(summary)}"""`);
  out();
  for (const f of baseName ? opt : m.fields) {
    out(`    ${f.py}: ${f.type}`);
    if (f.doc) out(`    """${docLine(f.doc)}"""`);
  }
  out();
  out();
  out(`def _${m.name}_to_wire(v: ${m.name}) -> dict[str, Any]:`);
  out(`    w: dict[str, Any] = {}`);
  for (const f of m.fields) {
    const val = shapes.conv(f.schema, `v[${pyStr(f.py)}]`, "in", "to", 1);
    if (f.required) out(`    w[${pyStr(f.wire)}] = ${val}`);
    else {
      out(`    if ${pyStr(f.py)} in v:`);
      out(`        w[${pyStr(f.wire)}] = ${val}`);
    }
  }
  out(`    return w`);
}

/** An "out" shape: a frozen dataclass with from_wire/to_wire. */
function emitDataclass(out, shapes, m) {
  const summary = m.schema.description ?? `The ${m.name} shape.`;
  out("@dataclass(frozen=True)");
  out(`class ${m.name}:`);
  out(`    """${docLine(summary)}"""`);
  out();
  const ordered = [...m.fields.filter((f) => f.required), ...m.fields.filter((f) => !f.required)];
  for (const f of ordered) {
    out(`    ${f.py}: ${f.type}${f.required ? "" : " | None = None"}`);
    if (f.doc) out(`    """${docLine(f.doc)}"""`);
  }
  out();
  out("    @classmethod");
  out(`    def from_wire(cls, w: Any) -> ${m.name}:`);
  out(`        """Builds the model from the daemon's JSON (camelCase field names)."""`);
  out("        return cls(");
  for (const f of ordered) {
    const src = f.required ? `w[${pyStr(f.wire)}]` : `w.get(${pyStr(f.wire)})`;
    let val = shapes.conv(f.schema, src, "out", "from", 1);
    if (!f.required && val !== src) val = `None if w.get(${pyStr(f.wire)}) is None else ${shapes.conv(f.schema, `w[${pyStr(f.wire)}]`, "out", "from", 1)}`;
    out(`            ${f.py}=${val},`);
  }
  out("        )");
  out();
  out("    def to_wire(self) -> dict[str, Any]:");
  out(`        """The model as the daemon's JSON."""`);
  out("        w: dict[str, Any] = {}");
  for (const f of ordered) {
    const toVal = toWireOut(f.schema, `self.${f.py}`, 1);
    if (f.required) out(`        w[${pyStr(f.wire)}] = ${toVal}`);
    else {
      out(`        if self.${f.py} is not None:`);
      out(`            w[${pyStr(f.wire)}] = ${toVal}`);
    }
  }
  out("        return w");
}
