import { FormatRegistry, type TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { ValueErrorType, type ValueError } from "@sinclair/typebox/errors";
import { METHODS, NOTIFICATIONS, type MethodName } from "./methods.js";

if (!FormatRegistry.Has("date-time")) {
  FormatRegistry.Set("date-time", (v) => !Number.isNaN(Date.parse(v)));
}

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checker(schema: TSchema): TypeCheck<TSchema> {
  let check = compiled.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check;
}

/** `/env/FOO` -> `env.FOO`, `/args/2` -> `args[2]`. */
function fieldName(path: string, root: string): string {
  if (path === "") return root;
  let out = root;
  for (const part of path.split("/").slice(1)) {
    const key = part.replace(/~1/g, "/").replace(/~0/g, "~");
    out += /^\d+$/.test(key) ? `[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
  }
  return out;
}

function describe(error: ValueError): string {
  if (error.type === ValueErrorType.ObjectRequiredProperty) return "is required";
  if (error.type === ValueErrorType.ObjectAdditionalProperties) return "is not a known field";
  const custom = (error.schema as { errorMessage?: unknown }).errorMessage;
  if (typeof custom === "string") return custom;
  return error.message.charAt(0).toLowerCase() + error.message.slice(1);
}

/**
 * Checks `value` against `schema`; returns null when it conforms, otherwise one message
 * that names the offending field (`params.args[2]: must be a string without NUL bytes`).
 */
export function explain(schema: TSchema, value: unknown, root = "params"): string | null {
  const check = checker(schema);
  if (check.Check(value)) return null;
  const errors = [...check.Errors(value)];
  // The deepest error names the field most precisely, but a union's own message is clearer than its branches'.
  const unionPaths = new Set(errors.filter((e) => e.type === ValueErrorType.Union).map((e) => e.path));
  const first = errors.find((e) => !(e.type !== ValueErrorType.Union && unionPaths.has(e.path))) ?? errors[0];
  if (!first) return `${root}: is invalid`;
  return `${fieldName(first.path, root)}: ${describe(first)}`;
}

export function explainParams(method: MethodName, params: unknown): string | null {
  return explain(METHODS[method].params, params === undefined ? {} : params);
}

export function explainResult(method: MethodName, result: unknown): string | null {
  return explain(METHODS[method].result, result, "result");
}

export function explainNotification(name: keyof typeof NOTIFICATIONS, params: unknown): string | null {
  return explain(NOTIFICATIONS[name].params, params);
}

export function isMethod(name: string): name is MethodName {
  return Object.prototype.hasOwnProperty.call(METHODS, name);
}

/** Nesting depth of a JSON text (objects and arrays), without parsing it. */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      // Skip the whole string with indexOf (native, fast): most of a big message is string bytes.
      for (;;) {
        const quote = text.indexOf('"', i + 1);
        if (quote === -1) return max; // unterminated: JSON.parse refuses it
        let escapes = 0;
        while (text.charCodeAt(quote - 1 - escapes) === 92 /* \ */) escapes++;
        i = quote;
        if (escapes % 2 === 0) break;
      }
    } else if (c === 123 || c === 91) {
      if (++depth > max) max = depth;
    } else if (c === 125 || c === 93) depth--;
  }
  return max;
}
