/**
 * Values coming back from a REPL. The drivers send JSON in which objects with a "$" tag stand for
 * what JSON cannot say (drivers/deno-repl.js and python-repl.py write them), so that undefined,
 * NaN, -0, BigInt, Date, RegExp, Map, Set, bytes, errors and shared or circular references survive.
 */
type Tagged = { $: string; v?: unknown; [k: string]: unknown };

const NUMBERS: Record<string, number> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, "-Infinity": Number.NEGATIVE_INFINITY, "-0": -0 };

/**
 * The value a REPL returned, rebuilt from its wire form.
 *
 * @example
 * decodeValue({ $: "map", v: [[1, { $: "bigint", v: "9007199254740993" }]] }); // Map { 1 => 9007199254740993n }
 */
export function decodeValue(wire: unknown): unknown {
  // Containers in the order the encoder first met them: a {"$": "ref", v: i} points at the i-th.
  const seen: unknown[] = [];
  const dec = (w: unknown): unknown => {
    if (w === null || typeof w !== "object") return w;
    if (Array.isArray(w)) {
      const out: unknown[] = [];
      seen.push(out);
      for (const x of w) out.push(dec(x));
      return out;
    }
    const t = w as Tagged;
    switch (t.$) {
      case undefined:
        break;
      case "undefined":
        return undefined;
      case "num":
        return NUMBERS[String(t.v)] ?? Number(t.v);
      case "bigint":
        return BigInt(String(t.v));
      case "repr":
        return String(t.v);
      case "date":
        return new Date(Number(t.v));
      case "regexp":
        return new RegExp(String(t.source), String(t.flags));
      case "bytes":
        return Uint8Array.from(atob(String(t.v)), (c) => c.charCodeAt(0));
      case "error": {
        const err = new Error(String(t.message));
        err.name = String(t.name);
        err.stack = String(t.stack || `${t.name}: ${t.message}`);
        return err;
      }
      case "ref": {
        const i = Number(t.v);
        if (!Number.isInteger(i) || i < 0 || i >= seen.length) throw new RangeError(`a REPL value refers to container ${t.v}, which it never sent`);
        return seen[i];
      }
      case "map": {
        const out = new Map<unknown, unknown>();
        seen.push(out);
        for (const [k, x] of t.v as [unknown, unknown][]) out.set(dec(k), dec(x));
        return out;
      }
      case "set": {
        const out = new Set<unknown>();
        seen.push(out);
        for (const x of t.v as unknown[]) out.add(dec(x));
        return out;
      }
      case "obj": {
        const out: Record<string, unknown> = {};
        seen.push(out);
        for (const [k, x] of t.v as [string, unknown][]) out[k] = dec(x);
        return out;
      }
      default:
        throw new RangeError(`a REPL value carries the unknown tag "${t.$}"`);
    }
    const out: Record<string, unknown> = {};
    seen.push(out);
    for (const [k, x] of Object.entries(w)) out[k] = dec(x);
    return out;
  };
  return dec(wire);
}
