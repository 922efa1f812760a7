// JSON Schema -> Python types, and the expressions converting values across the wire.
import { RENAMES, pascal, snake } from "./names.mjs";

export const isRecord = (s) => s.type === "object" && !s.properties && (s.patternProperties || typeof s.additionalProperties === "object");
export const isModel = (s) => s.type === "object" && !!s.properties;

export function recordValue(s) {
  if (s.patternProperties) {
    const vals = Object.values(s.patternProperties);
    if (vals.length !== 1) throw new Error("record with several value schemas");
    return vals[0];
  }
  return s.additionalProperties;
}

/** Whether values of this schema need converting between wire and Python (objects do). */
export function needsConv(s) {
  if (isModel(s)) return true;
  if (s.type === "array") return needsConv(s.items);
  if (isRecord(s)) return needsConv(recordValue(s));
  return false;
}

/**
 * The models met while typing one document, one per distinct object shape and side: "in"
 * shapes (params the caller builds) become TypedDicts, "out" shapes (what the daemon sends)
 * frozen dataclasses. `order` lists them as first met, nested shapes before their parents,
 * which is the order models.py declares them in.
 */
export function createShapes() {
  const models = new Map(); // key -> { name, side, schema, fields }
  const order = [];

  function model(schema, hint, side) {
    const key = side + JSON.stringify(schema);
    const have = models.get(key);
    if (have) return have;
    const name = RENAMES[hint] ?? hint;
    const m = { name, side, schema, fields: [] };
    models.set(key, m);
    const required = new Set(schema.required ?? []);
    for (const [wire, sub] of Object.entries(schema.properties)) {
      m.fields.push({ wire, py: snake(wire), required: required.has(wire), schema: sub, type: pyType(sub, hint + pascal(wire), side), doc: sub.description });
    }
    order.push(m);
    return m;
  }

  /** The Python type of a schema; registers models met on the way. */
  function pyType(s, hint, side) {
    if (s.const !== undefined) return `Literal[${JSON.stringify(s.const)}]`;
    if (s.anyOf) {
      const parts = [];
      const lits = [];
      for (const alt of s.anyOf) {
        if (alt.const !== undefined) lits.push(JSON.stringify(alt.const));
        else {
          if (isModel(alt)) throw new Error(`${hint}: unions of objects are not supported`);
          const t = pyType(alt, hint, side);
          if (t.startsWith("Literal[")) lits.push(t.slice(8, -1));
          else parts.push(t);
        }
      }
      const all = [...(lits.length ? [`Literal[${lits.join(", ")}]`] : []), ...parts];
      // A literal beside plain str adds nothing for a type checker but documents the known values.
      return [...new Set(all)].join(" | ");
    }
    switch (s.type) {
      case "string": return "str";
      case "integer": return "int";
      case "number": return "float";
      case "boolean": return "bool";
      case "null": return "None";
      case "array": return `list[${pyType(s.items, hint + "Item", side)}]`;
      case "object":
        if (isModel(s)) return model(s, hint, side).name;
        if (isRecord(s)) return `dict[str, ${pyType(recordValue(s), hint + "Value", side)}]`;
        return "dict[str, Any]";
      case undefined:
        return "Any";
      default:
        throw new Error(`${hint}: unsupported schema type ${s.type}`);
    }
  }

  /**
   * A Python expression converting `expr` of schema `s` across the wire. Only model field
   * names are mapped; record keys (env names, labels, secret names) pass through untouched.
   */
  function conv(s, expr, side, dir, depth = 0) {
    if (!needsConv(s)) return expr;
    const v = `v${depth}`;
    const k = `k${depth}`;
    if (isModel(s)) {
      const m = models.get(side + JSON.stringify(s));
      return dir === "from" ? `${m.name}.from_wire(${expr})` : `_${m.name}_to_wire(${expr})`;
    }
    if (s.type === "array") return `[${conv(s.items, v, side, dir, depth + 1)} for ${v} in ${expr}]`;
    return `{${k}: ${conv(recordValue(s), v, side, dir, depth + 1)} for ${k}, ${v} in ${expr}.items()}`;
  }

  return { model, pyType, conv, order };
}

/** to_wire of an output-side value: dataclasses convert themselves. */
export function toWireOut(s, expr, depth) {
  if (!needsConv(s)) return expr;
  const v = `v${depth}`;
  const k = `k${depth}`;
  if (isModel(s)) return `${expr}.to_wire()`;
  if (s.type === "array") return `[${toWireOut(s.items, v, depth + 1)} for ${v} in ${expr}]`;
  return `{${k}: ${toWireOut(recordValue(s), v, depth + 1)} for ${k}, ${v} in ${expr}.items()}`;
}
