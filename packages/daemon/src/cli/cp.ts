/**
 * `sbx cp` and `sbx run --upload`: copies like cp(1). A destination that is an existing
 * directory (or ends in /) receives the source under its own name; a missing local path is
 * one line naming it, before any sandbox is touched.
 */
import { existsSync, lstatSync, statSync, type Stats } from "node:fs";
import { basename, dirname, join, posix } from "node:path";
import { ResourceLimitError, RpcError, Sandbox } from "@sbx/client";
import { parse, UsageError } from "./args.js";
import { CliError } from "./errors.js";
import { ensureLocalDaemon } from "./local-daemon.js";
import { parseBytes } from "../util/units.js";

type ConnectValues = { url?: string; token?: string };

/** The local source's lstat, or a one-line error naming it. */
export function localSource(path: string, what: string): Stats {
  try {
    return lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`${what}${path}: ${code === "ENOENT" ? "no such file or directory" : (err as Error).message}`);
  }
}

/** Stat of a sandbox path, or null when there is nothing there. */
async function remoteStat(sb: Sandbox, path: string) {
  try {
    return await sb.fs.stat(path);
  } catch (err) {
    if (err instanceof RpcError && (err.errno === "ENOENT" || err.errno === "ENOTDIR")) return null;
    throw err;
  }
}

/** Uploads `local` (already checked with localSource) to `remote`, into it when it is a directory. */
export async function uploadInto(sb: Sandbox, local: string, localStat: Stats, remote: string, shown: string): Promise<void> {
  const existing = await remoteStat(sb, remote);
  let target = remote;
  if (existing?.isDirectory && basename(local)) target = posix.join(remote, basename(local));
  else if (remote.endsWith("/") && !existing && !localStat.isDirectory()) throw new CliError(`${shown}: no such directory in the sandbox`);
  await sb.fs.upload(local, target);
}

/** Downloads sandbox `remote` to `local`, into it when it is an existing directory; at most `maxBytes` (the SDK's default when undefined). */
async function downloadInto(sb: Sandbox, remote: string, shown: string, local: string, maxBytes: number | undefined): Promise<void> {
  const source = await remoteStat(sb, remote);
  if (!source) throw new CliError(`${shown}: no such file or directory in the sandbox`);
  let target = local;
  const existing = existsSync(local) ? statSync(local) : null;
  if (existing?.isDirectory() && posix.basename(remote)) target = join(local, posix.basename(remote));
  else if (local.endsWith("/") && !existing && !source.isDirectory) throw new CliError(`${local}: no such directory`);
  else if (!existsSync(dirname(target))) throw new CliError(`${dirname(target)}: no such directory`);
  try {
    await sb.fs.download(remote, target, maxBytes === undefined ? {} : { maxBytes });
  } catch (err) {
    // The SDK's words name its option; here it is the flag (only in those words: a path may say maxBytes too).
    if (err instanceof ResourceLimitError) throw new CliError(err.message.replace(/(than|past) maxBytes \(/, "$1 --max-bytes (").replace("larger { maxBytes }", "larger --max-bytes"));
    throw err;
  }
}

/** `sbx cp SRC DEST`: exactly one side is `ID:/path`. */
export async function cpCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { url: { type: "string" }, token: { type: "string" }, "max-bytes": { type: "string" } });
  if (positionals.length !== 2) throw new UsageError("usage: sbx cp [--max-bytes SIZE] SRC DEST   (one of them ID:/path)");
  const remote = (s: string) => /^(sbx_[A-Za-z0-9_-]+):(.+)$/.exec(s);
  const [src, dest] = positionals as [string, string];
  const from = remote(src);
  const to = remote(dest);
  if (!!from === !!to) throw new UsageError("exactly one of SRC and DEST must be ID:/path (like sbx_abc…:/home/sandbox/file)");
  const maxText = (values as { "max-bytes"?: string })["max-bytes"];
  if (maxText !== undefined && to) throw new UsageError("--max-bytes bounds a download (SRC ID:/path); an upload is bounded by the sandbox's disk");
  let maxBytes: number | undefined;
  try {
    maxBytes = maxText === undefined ? undefined : parseBytes(maxText);
  } catch (err) {
    throw new UsageError(`--max-bytes: ${(err as Error).message}`);
  }
  const localStat = to ? localSource(src, "") : null;
  const connect = values as ConnectValues;
  await ensureLocalDaemon(connect, "existing");
  const sb = await Sandbox.connect((from ?? to)![1]!, { ...(connect.url ? { url: connect.url } : {}), ...(connect.token ? { token: connect.token } : {}) });
  try {
    if (to) await uploadInto(sb, src, localStat!, to[2]!, dest);
    else await downloadInto(sb, from![2]!, src, dest, maxBytes);
  } finally {
    await sb.close();
  }
  return 0;
}
