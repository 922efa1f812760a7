import { Readable, Writable } from "node:stream";
import { Sandbox, type SandboxOptions } from "@sbx/client";
import { keyValues, parse, splitCommand, UsageError } from "./args.js";

const CONNECT = { url: { type: "string" }, token: { type: "string" } } as const;
const CREATE = {
  ...CONNECT,
  "allow-net": { type: "string", multiple: true },
  secret: { type: "string", multiple: true },
  memory: { type: "string" },
  cpus: { type: "string" },
  disk: { type: "string" },
  timeout: { type: "string" },
  env: { type: "string", multiple: true },
  label: { type: "string", multiple: true },
} as const;

function connectOptions(values: { url?: string; token?: string }) {
  return { ...(values.url ? { url: values.url } : {}), ...(values.token ? { token: values.token } : {}) };
}

/** `--secret NAME=ENVVAR@host[,host]`: the value comes from this process's environment, never argv. */
function secretsOf(list: string[] | undefined): SandboxOptions["secrets"] {
  if (!list?.length) return undefined;
  const out: NonNullable<SandboxOptions["secrets"]> = {};
  for (const item of list) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=([A-Za-z_][A-Za-z0-9_]*)@(.+)$/.exec(item);
    // The argument is not echoed: someone may have put the value itself there.
    if (!m) throw new UsageError("--secret expects NAME=ENVVAR@HOST[,HOST]: the value is read from $ENVVAR, never from the command line");
    const value = process.env[m[2]!];
    if (!value) throw new UsageError(`--secret ${m[1]}: environment variable ${m[2]} is not set`);
    out[m[1]!] = { hosts: m[3]!.split(","), value };
  }
  return out;
}

function createOptions(values: Record<string, any>, defaultTimeout: SandboxOptions["timeout"]): SandboxOptions {
  const cpus = values.cpus === undefined ? undefined : Number(values.cpus);
  if (cpus !== undefined && !(cpus > 0)) throw new UsageError(`--cpus expects a positive number, got '${values.cpus}'`);
  return {
    ...connectOptions(values),
    ...(values["allow-net"] ? { allowNet: values["allow-net"] } : {}),
    ...(values.secret ? { secrets: secretsOf(values.secret) } : {}),
    ...(values.memory ? { memory: values.memory } : {}),
    ...(values.disk ? { disk: values.disk } : {}),
    ...(cpus !== undefined ? { cpus } : {}),
    timeout: (values.timeout ?? defaultTimeout) as SandboxOptions["timeout"],
    ...(values.env ? { env: keyValues(values.env, "--env") } : {}),
    ...(values.label ? { labels: keyValues(values.label, "--label") } : {}),
  };
}

/** Runs a command with this terminal's stdio and returns the exit code a shell would report. */
async function runAttached(sb: Sandbox, command: string[]): Promise<number> {
  if (command.length === 0) throw new UsageError("no command given after --");
  const feedStdin = !process.stdin.isTTY;
  const child = await sb.spawn(command[0]!, { args: command.slice(1), stdin: feedStdin ? "piped" : "null", stdout: "piped", stderr: "piped" });
  const copies = [
    child.stdout!.pipeTo(Writable.toWeb(process.stdout) as WritableStream<Uint8Array>, { preventClose: true }).catch(() => {}),
    child.stderr!.pipeTo(Writable.toWeb(process.stderr) as WritableStream<Uint8Array>, { preventClose: true }).catch(() => {}),
  ];
  if (feedStdin && child.stdin) {
    (Readable.toWeb(process.stdin) as ReadableStream<Uint8Array>).pipeTo(child.stdin).catch(() => {});
  }
  const status = await child.status;
  await Promise.all(copies);
  if (feedStdin) process.stdin.destroy();
  return status.code;
}

export async function runCommand(args: string[]): Promise<number> {
  const { before, command } = splitCommand(args);
  const { values } = parse(before, { ...CREATE, upload: { type: "string", multiple: true } }, false);
  const uploads = ((values.upload ?? []) as string[]).map((u) => {
    const i = u.lastIndexOf(":");
    if (i <= 0 || i === u.length - 1) throw new UsageError(`--upload expects LOCAL:REMOTE, got '${u}'`);
    return [u.slice(0, i), u.slice(i + 1)] as const;
  });
  if (command.length === 0) throw new UsageError("usage: sbx run [options] -- CMD [ARGS...]");
  const sb = await Sandbox.create(createOptions(values, "session"));
  try {
    for (const [local, remote] of uploads) await sb.fs.upload(local, remote);
    return await runAttached(sb, command);
  } finally {
    await sb[Symbol.asyncDispose]().catch(() => {});
  }
}

export async function createCommand(args: string[]): Promise<number> {
  const { values } = parse(args, CREATE, false);
  const sb = await Sandbox.create(createOptions(values, "30m"));
  process.stdout.write(`${sb.id}\n`);
  await sb.close();
  return 0;
}

export async function execCommand(args: string[]): Promise<number> {
  const { before, command } = splitCommand(args);
  const { values, positionals } = parse(before, CONNECT);
  if (positionals.length !== 1) throw new UsageError("usage: sbx exec ID -- CMD [ARGS...]");
  const sb = await Sandbox.connect(positionals[0]!, connectOptions(values));
  try {
    return await runAttached(sb, command);
  } finally {
    await sb.close();
  }
}

export async function lsCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { ...CONNECT, json: { type: "boolean" }, label: { type: "string", multiple: true } }, false);
  const list = await Sandbox.list({ ...connectOptions(values), ...(values.label ? { labels: keyValues(values.label, "--label") } : {}) });
  if (values.json) {
    process.stdout.write(JSON.stringify(list, null, 2) + "\n");
    return 0;
  }
  const rows = [["ID", "STATUS", "CREATED", "EXPIRES", "LABELS"]];
  for (const s of list) {
    rows.push([s.id, s.status, s.createdAt.toISOString(), s.expiresAt?.toISOString() ?? "session", Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(",")]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd() + "\n");
  return 0;
}

export async function killCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, CONNECT);
  if (positionals.length === 0) throw new UsageError("usage: sbx kill ID [ID...]");
  for (const id of positionals) {
    const sb = await Sandbox.connect(id, connectOptions(values));
    await sb.kill();
  }
  return 0;
}

export async function usageCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECT, json: { type: "boolean" } });
  if (positionals.length !== 1) throw new UsageError("usage: sbx usage ID [--json]");
  const sb = await Sandbox.connect(positionals[0]!, connectOptions(values)).catch(() => null);
  // A sandbox that ended has no connection to attach to; its final usage is read through a fresh one.
  const usage = sb ? await sb.usage().finally(() => sb.close()) : await Sandbox.usageOf(positionals[0]!, connectOptions(values));
  if (values.json) process.stdout.write(JSON.stringify(usage, null, 2) + "\n");
  else {
    const rows: Array<[string, string]> = [
      ["status", usage.status],
      ["cpu", `${usage.cpuSeconds.toFixed(3)} s`],
      ["memory peak", `${(usage.memoryPeakBytes / 2 ** 20).toFixed(1)} MiB`],
      ["memory", `${usage.memoryGbSeconds.toFixed(3)} GB-s`],
      ["disk", `${(usage.diskBytes / 2 ** 20).toFixed(1)} MiB`],
      ["wall", `${usage.wallSeconds.toFixed(1)} s`],
      ["egress", `${usage.egress.requests} requests (${usage.egress.blocked} blocked), ${usage.egress.bytesOut} B out, ${usage.egress.bytesIn} B in`],
    ];
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(12)} ${v}\n`);
    if (usage.approximate) process.stdout.write("(approximate: rootless mode measures processes, not a cgroup)\n");
  }
  return 0;
}

/** `sbx cp SRC DEST`: exactly one side is `ID:/path`. */
export async function cpCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, CONNECT);
  if (positionals.length !== 2) throw new UsageError("usage: sbx cp SRC DEST   (one of them ID:/path)");
  const remote = (s: string) => /^(sbx_[A-Za-z0-9_-]+):(.+)$/.exec(s);
  const [src, dest] = positionals as [string, string];
  const from = remote(src);
  const to = remote(dest);
  if (!!from === !!to) throw new UsageError("sbx cp: exactly one of SRC and DEST must be ID:/path");
  const sb = await Sandbox.connect((from ?? to)![1]!, connectOptions(values));
  try {
    if (to) await sb.fs.upload(src, to[2]!);
    else await sb.fs.download(from![2]!, dest);
  } finally {
    await sb.close();
  }
  return 0;
}

/** `sbx net ID --allow HOST...`: replace what a running sandbox may reach (no --allow: nothing). */
export async function netCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECT, allow: { type: "string", multiple: true } });
  if (positionals.length !== 1) throw new UsageError("usage: sbx net ID [--allow HOST]...");
  const sb = await Sandbox.connect(positionals[0]!, connectOptions(values));
  try {
    await sb.setAllowNet((values.allow as string[] | undefined) ?? []);
  } finally {
    await sb.close();
  }
  return 0;
}

/** `sbx logs ID --net [--json]`: the sandbox's recent egress decisions. */
export async function logsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECT, net: { type: "boolean" }, json: { type: "boolean" } });
  if (positionals.length !== 1 || !values.net) throw new UsageError("usage: sbx logs ID --net [--json]");
  const sb = await Sandbox.connect(positionals[0]!, connectOptions(values));
  try {
    const log = await sb.egressLog();
    if (values.json) process.stdout.write(JSON.stringify(log, null, 2) + "\n");
    else for (const e of log) process.stdout.write(`${e.time}  ${e.allowed ? "allowed" : "BLOCKED"}  ${e.method} ${e.host}:${e.port}${e.reason ? `  (${e.reason})` : ""}\n`);
  } finally {
    await sb.close();
  }
  return 0;
}
