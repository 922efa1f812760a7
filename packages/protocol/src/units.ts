/**
 * Sizes and durations as people type them. The schema patterns and the parsers share these
 * definitions, so a string the daemon's validation accepts is always one it can parse.
 *
 * Sizes: a number, optionally a fraction, then a unit, case-insensitive, `B` optional.
 * `KB`/`MB`/`GB`/`TB` are decimal (10^3 … 10^12); `KiB`/`MiB`/`GiB`/`TiB` and the bare
 * letters `K`/`M`/`G`/`T` (and `Ki`…`Ti`) are binary (2^10 … 2^40): `1G` = `1GiB` = 2^30,
 * `1GB` = 10^9.
 *
 * Durations: one or more `<digits><unit>` from largest to smallest, each unit at most once:
 * `h`, `m`, `s`, `ms` (`2h`, `90s`, `1h30m`, `2m30s`, `1s500ms`).
 */

const DECIMAL = { K: 1e3, M: 1e6, G: 1e9, T: 1e12 } as const;
const BINARY = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 } as const;

/** ECMAScript (and JSON Schema) pattern of a size string. */
export const BYTE_SIZE_PATTERN = "^\\s*([0-9]+(?:\\.[0-9]+)?)\\s*(?:([KMGTkmgt])([Ii]?)([Bb]?)|([Bb]))?\\s*$";

/** ECMAScript (and JSON Schema) pattern of a duration string; the lookahead refuses "". */
export const DURATION_PATTERN = "^(?=[0-9])(?:([0-9]{1,9})h)?(?:([0-9]{1,9})m(?!s))?(?:([0-9]{1,9})s)?(?:([0-9]{1,9})ms)?$";

const BYTE_SIZE = new RegExp(BYTE_SIZE_PATTERN);
const DURATION = new RegExp(DURATION_PATTERN);

/**
 * Bytes from a number or a size string; throws naming the value when it is neither.
 *
 * @example
 * parseBytes("512MiB"); // 536870912
 * parseBytes("1gb");    // 1000000000
 * parseBytes("1.5G");   // 1610612736
 */
export function parseBytes(value: number | string): number {
  if (typeof value === "number") return value;
  const m = BYTE_SIZE.exec(value);
  if (!m) throw new Error(`'${value}' is not a size such as "512MiB", "1.5GiB" or "10GB"`);
  const [, amount, letter, binaryMark, byteMark] = m;
  let unit = 1;
  if (letter) {
    const key = letter.toUpperCase() as keyof typeof BINARY;
    // "G", "Gi" and "GiB" are binary; only "GB" (a B with no i) is decimal.
    unit = byteMark && !binaryMark ? DECIMAL[key] : BINARY[key];
  }
  return Math.floor(Number(amount) * unit);
}

/**
 * Milliseconds from a duration string; throws naming the value when it is not one.
 *
 * @example
 * parseDuration("90s");   // 90000
 * parseDuration("1h30m"); // 5400000
 */
export function parseDuration(value: string): number {
  const m = DURATION.exec(value);
  if (!m) throw new Error(`'${value}' is not a duration such as "30s", "5m", "1h30m" or "500ms"`);
  const [h, min, s, ms] = m.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number];
  return ((h * 60 + min) * 60 + s) * 1000 + ms;
}
