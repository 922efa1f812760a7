const UNITS: Record<string, number> = {
  "": 1, B: 1,
  K: 1024, KI: 1024, KIB: 1024, KB: 1000,
  M: 1024 ** 2, MI: 1024 ** 2, MIB: 1024 ** 2, MB: 1000 ** 2,
  G: 1024 ** 3, GI: 1024 ** 3, GIB: 1024 ** 3, GB: 1000 ** 3,
  T: 1024 ** 4, TI: 1024 ** 4, TIB: 1024 ** 4, TB: 1000 ** 4,
};

/** Parses bytes given as a number or a string like "512MiB", "1.5GiB", "10GB". */
export function parseBytes(value: number | string): number {
  if (typeof value === "number") return value;
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$/.exec(value.trim());
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`'${value}' is not a size such as "512MiB"`);
  return Math.floor(Number(m[1]) * unit);
}

/** Parses "500ms", "30s", "5m", "2h" into milliseconds. */
export function parseDuration(value: string): number {
  const m = /^([0-9]{1,9})(ms|s|m|h)$/.exec(value);
  if (!m) throw new Error(`'${value}' is not a duration such as "30s" or "5m"`);
  const n = Number(m[1]);
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}

export function formatBytes(n: number): string {
  for (const [unit, size] of [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return `${n}B`;
}
