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

/**
 * For `sbx run`/`sbx exec`: the options before `--` and the command after it. `leading` words
 * (exec's ID) may precede the options; any other word before `--` is a command that was meant
 * to follow it, which parseArgs would report as "does not take positional arguments" or, for
 * `ls -la`, as an unknown option.
 */
export function optionsThenCommand<T extends NonNullable<ParseArgsConfig["options"]>>(args: string[], options: T, usage: string, leading = 0): Parsed & { command: string[] } {
  const { before, command } = splitCommand(args);
  const loose = parseArgs({ args: before, options, allowPositionals: true, strict: false, tokens: true });
  const words = loose.tokens.filter((t) => t.kind === "positional").map((t) => (t as { value: string }).value);
  if (words.length > leading) {
    const stray = words.slice(leading).join(" ");
    throw new UsageError(`put the command after --: ${usage} (got '${stray}' before any --)`);
  }
  const parsed = parse(before, options, leading > 0);
  if (parsed.positionals.length !== leading) throw new UsageError(`usage: ${usage}`);
  if (command.length === 0) throw new UsageError(`no command given after --: ${usage}`);
  return { ...parsed, command };
}
