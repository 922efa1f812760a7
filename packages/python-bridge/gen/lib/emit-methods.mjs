// methods.py: the protocol's methods as Python calls, one template emitted as a sync and an async layer.
import { HEADER, docLine, pyStr, source } from "./python.mjs";

/** The text of methods.py. */
export function emitMethods(shapes, methods) {
  const { out, text } = source();
  out(HEADER);
  out('"""The protocol\'s methods as Python calls: one template, emitted as a sync and an async layer."""');
  out();
  out("from __future__ import annotations");
  out();
  out("from typing import Any, Literal, cast");
  out();
  out("from .._pending import AsyncPending, AsyncRawPending, Pending, RawPending");
  out("from .models import *  # noqa: F403");
  out("from .models import (");
  for (const m of shapes.order) if (m.side === "in") out(`    _${m.name}_to_wire,`);
  out(")");
  out();
  out('__all__ = ["Methods", "AsyncMethods", "IN_STREAMS", "OUT_STREAMS", "METHOD_ERRORS"]');
  out();
  out("#: Params naming streams the client writes, per method.");
  out("IN_STREAMS: dict[str, tuple[str, ...]] = {");
  for (const m of methods) if (m.inStreams.length) out(`    ${pyStr(m.name)}: (${m.inStreams.map(pyStr).join(", ")},),`);
  out("}");
  out("#: Params naming streams the daemon writes, per method.");
  out("OUT_STREAMS: dict[str, tuple[str, ...]] = {");
  for (const m of methods) if (m.outStreams.length) out(`    ${pyStr(m.name)}: (${m.outStreams.map(pyStr).join(", ")},),`);
  out("}");
  out("#: Error codes each method may answer with.");
  out("METHOD_ERRORS: dict[str, tuple[str, ...]] = {");
  for (const m of methods) out(`    ${pyStr(m.name)}: (${m.errors.map(pyStr).join(", ")}${m.errors.length ? "," : ""}),`);
  out("}");

  for (const flavour of ["sync", "async"]) {
    const isAsync = flavour === "async";
    const cls = isAsync ? "AsyncMethods" : "Methods";
    out();
    out();
    out(`class ${cls}:`);
    out(`    """Every protocol method (${flavour}); a transport supplies \`_call\`."""`);
    out();
    out(`    ${isAsync ? "async " : ""}def _call(self, method: str, params: dict[str, Any]) -> Any:`);
    out("        raise NotImplementedError");
    out();
    out(`    ${isAsync ? "async " : ""}def _start(self, method: str, params: dict[str, Any], streams: tuple[int, ...]) -> ${isAsync ? "AsyncRawPending" : "RawPending"}:`);
    out("        raise NotImplementedError");
    for (const m of methods) {
      emitMethod(out, shapes, m, isAsync);
      emitStart(out, shapes, m, isAsync);
    }
  }
  return text();
}

/** The keyword-only signature of a method's params, required ones first. */
function signature(m, star) {
  const req = m.params.filter((p) => p.required);
  const opt = m.params.filter((p) => !p.required);
  return ["self", ...(star ? ["*"] : []), ...req.map((p) => `${p.py}: ${p.type}`), ...opt.map((p) => `${p.py}: ${p.type} | None = None`)].join(", ");
}

/** The lines building the wire params of a call from its Python arguments. */
function emitParams(out, shapes, m) {
  out(`        params: dict[str, Any] = {}`);
  for (const p of m.params.filter((x) => x.required)) out(`        params[${pyStr(p.wire)}] = ${shapes.conv(p.schema, p.py, "in", "to", 1)}`);
  for (const p of m.params.filter((x) => !x.required)) {
    out(`        if ${p.py} is not None:`);
    out(`            params[${pyStr(p.wire)}] = ${shapes.conv(p.schema, p.py, "in", "to", 1)}`);
  }
}

/** One method, for one flavour. */
function emitMethod(out, shapes, m, isAsync) {
  out();
  out(`    ${isAsync ? "async " : ""}def ${m.py}(${signature(m, m.params.length > 0)}) -> ${m.resultType}:`);
  out(`        """${docLine(m.summary)} (\`${m.name}\`)"""`);
  emitParams(out, shapes, m);
  out(`        result = ${isAsync ? "await " : ""}self._call(${pyStr(m.name)}, params)`);
  const r = shapes.conv(m.result, "result", "out", "from", 1);
  out(r === "result" ? `        return cast(${pyStr(m.resultType)}, result)` : `        return ${r}`);
}

/**
 * For methods moving a stream: a `start_` variant that sends the call and returns at once,
 * so the caller can feed or drain the stream while the daemon works; a failed call fails
 * its streams.
 */
function emitStart(out, shapes, m, isAsync) {
  const streams = [...m.inStreams, ...m.outStreams];
  if (!streams.length) return;
  const pending = `${isAsync ? "Async" : ""}Pending[${m.resultType}]`;
  out();
  out(`    ${isAsync ? "async " : ""}def start_${m.py}(${signature(m, true)}) -> ${pending}:`);
  out(`        """Sends \`${m.name}\` and returns while its streams (${streams.join(", ")}) move; \`result()\` waits for the answer."""`);
  emitParams(out, shapes, m);
  const ids = streams.map((n) => `params[${pyStr(n)}]`);
  out(`        streams = tuple(s for s in (${ids.join(", ")},) if isinstance(s, int))`);
  out(`        raw = ${isAsync ? "await " : ""}self._start(${pyStr(m.name)}, params, streams)`);
  const r = shapes.conv(m.result, "result", "out", "from", 1);
  out(`        return ${isAsync ? "Async" : ""}Pending(raw, lambda result: ${r === "result" ? `cast(${pyStr(m.resultType)}, result)` : r})`);
}
