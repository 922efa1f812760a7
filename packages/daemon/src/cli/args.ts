import { parseArgs, type ParseArgsConfig } from "node:util";

type Parsed = { values: Record<string, any>; positionals: string[] };

export class UsageError extends Error {}

/** parseArgs with our error type, so every bad flag is reported the same way. */
export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(args: string[], options: T, allowPositionals = true): Parsed {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Splits `sbx exec ID -- CMD ARGS` at the first `--`. */
export function splitCommand(args: string[]): { before: string[]; command: string[] } {
  const i = args.indexOf("--");
  return i < 0 ? { before: args, command: [] } : { before: args.slice(0, i), command: args.slice(i + 1) };
}

export function keyValues(list: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`${flag} expects KEY=VALUE, got '${item}'`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}
