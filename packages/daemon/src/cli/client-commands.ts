import { Readable, Writable } from "node:stream";
import { Sandbox, type SandboxOptions } from "@sbx/client";
import { keyValues, optionsThenCommand, parse, UsageError } from "./args.js";
import { localSource, uploadInto } from "./cp.js";
import { stateDirFrom } from "./daemon.js";
import { formatCsv, formatTable, parseWhen, usageReport } from "./usage-report.js";
import { ensureLocalDaemon } from "./local-daemon.js";
import { volumesOf } from "./volumes.js";

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
  upload: { type: "string", multiple: true },
  volume: { type: "string", multiple: true },
} as const;

function connectOptions(values: { url?: string; token?: string }) {
  if (values.url !== undefined && !/^wss?:\/\/[^/]/.test(values.url)) {
    throw new UsageError(`--url must be a ws:// or wss:// URL, got '${values.url}'${/^[^/]+:\d+$/.test(values.url) ? ` (did you mean ws://${values.url}?)` : ""}`);
  }
  return { ...(values.url ? { url: values.url } : {}), ...(values.token ? { token: values.token } : {}) };
}

/** Connection options for a command, after making sure a daemon answers (see local-daemon.ts). */
export async function connectFor(values: { url?: string; token?: string }, mode: "start" | "existing") {
  const options = connectOptions(values);
  await ensureLocalDaemon(values, mode);
  return options;
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

function createOptions(values: Record<string, any>, defaultTimeout: SandboxOptions["timeout"]): Omit<SandboxOptions, "url" | "token"> {
  const cpus = values.cpus === undefined ? undefined : Number(values.cpus);
  if (cpus !== undefined && !(cpus > 0)) throw new UsageError(`--cpus expects a positive number, got '${values.cpus}'`);
  return {
    ...(values["allow-net"] ? { allowNet: values["allow-net"] } : {}),
    ...(values.secret ? { secrets: secretsOf(values.secret) } : {}),
    ...(values.memory ? { memory: values.memory } : {}),
    ...(values.disk ? { disk: values.disk } : {}),
    ...(cpus !== undefined ? { cpus } : {}),
    timeout: (values.timeout ?? defaultTimeout) as SandboxOptions["timeout"],
    ...(values.env ? { env: keyValues(values.env, "--env") } : {}),
    ...(values.label ? { labels: keyValues(values.label, "--label") } : {}),
    ...(values.volume ? { volumes: volumesOf(values.volume) } : {}),
  };
}

/** Runs a command with this terminal's stdio and returns the exit code a shell would report. */
async function runAttached(sb: Sandbox, command: string[]): Promise<number> {
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

/** `--upload LOCAL:REMOTE`s, each local path checked before a sandbox exists: a typo costs nothing. */
function uploadsOf(list: string[] | undefined) {
  return (list ?? []).map((u) => {
    const i = u.lastIndexOf(":");
    if (i <= 0 || i === u.length - 1) throw new UsageError(`--upload expects LOCAL:REMOTE, got '${u}'`);
    const local = u.slice(0, i);
    return { local, stat: localSource(local, "--upload "), remote: u.slice(i + 1) };
  });
}

async function upload(sb: Sandbox, uploads: ReturnType<typeof uploadsOf>): Promise<void> {
  for (const { local, stat, remote } of uploads) await uploadInto(sb, local, stat, remote, remote);
}

export async function runCommand(args: string[]): Promise<number> {
  const { values, command } = optionsThenCommand(args, CREATE, "sbx run [options] -- CMD [ARGS...]");
  const uploads = uploadsOf(values.upload);
  const options = createOptions(values, "session");
  const sb = await Sandbox.create({ ...options, ...(await connectFor(values, "start")) });
  try {
    await upload(sb, uploads);
    return await runAttached(sb, command);
  } finally {
    // `sbx run` ends its sandbox with the command (disposing only closes the connection, as Deno's).
    await sb.kill().catch(() => {});
  }
}

export async function createCommand(args: string[]): Promise<number> {
  const { values } = parse(args, CREATE, false);
  if (values.timeout === "session") {
    // A session sandbox dies with the connection that made it, which ends as `sbx create` exits.
    throw new UsageError("--timeout session would end the sandbox seconds after `sbx create` exits; give a duration such as 30m (the default) or 2h, and `sbx kill ID` when done (sbx run keeps a session sandbox for as long as its command runs)");
  }
  const uploads = uploadsOf(values.upload);
  const options = createOptions(values, "30m");
  const sb = await Sandbox.create({ ...options, ...(await connectFor(values, "start")) });
  try {
    await upload(sb, uploads);
  } catch (err) {
    // A sandbox without the files asked for is not what was created for: do not leave it behind.
    await sb.kill().catch(() => {});
    throw err;
  }
  process.stdout.write(`${sb.id}\n`);
  await sb.close();
  return 0;
}

export async function execCommand(args: string[]): Promise<number> {
  const { values, positionals, command } = optionsThenCommand(args, CONNECT, "sbx exec ID -- CMD [ARGS...]", 1);
  const sb = await Sandbox.connect(positionals[0]!, await connectFor(values, "existing"));
  try {
    return await runAttached(sb, command);
  } finally {
    await sb.close();
  }
}

export async function lsCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { ...CONNECT, json: { type: "boolean" }, label: { type: "string", multiple: true } }, false);
  const list = await Sandbox.list({ ...(await connectFor(values, "start")), ...(values.label ? { labels: keyValues(values.label, "--label") } : {}) });
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
  const options = await connectFor(values, "existing");
  for (const id of positionals) {
    const sb = await Sandbox.connect(id, options);
    await sb.kill();
  }
  return 0;
}

const USAGE_HELP = "usage: sbx usage ID [--json], or sbx usage --tenant NAME|--all [--since 30d|DATE] [--until DATE] [--format table|csv|json] [--state-dir DIR|--config FILE]";

export async function usageCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...CONNECT,
    json: { type: "boolean" },
    tenant: { type: "string" },
    all: { type: "boolean" },
    since: { type: "string" },
    until: { type: "string" },
    format: { type: "string" },
    "state-dir": { type: "string" },
    config: { type: "string" },
  });
  if (values.tenant !== undefined || values.all) {
    if (positionals.length > 0 || (values.tenant !== undefined && values.all)) throw new UsageError(USAGE_HELP);
    return tenantUsage(values);
  }
  if (positionals.length !== 1) throw new UsageError(USAGE_HELP);
  const options = await connectFor(values, "existing");
  const sb = await Sandbox.connect(positionals[0]!, options).catch(() => null);
  // A sandbox that ended has no connection to attach to; its final usage is read through a fresh one.
  const usage = sb ? await sb.usage().finally(() => sb.close()) : await Sandbox.usageOf(positionals[0]!, options);
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

/** `sbx net ID --allow HOST...`: replace what a running sandbox may reach (no --allow: nothing). */
export async function netCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECT, allow: { type: "string", multiple: true } });
  if (positionals.length !== 1) throw new UsageError("usage: sbx net ID [--allow HOST]...");
  const sb = await Sandbox.connect(positionals[0]!, await connectFor(values, "existing"));
  try {
    await sb.setAllowNet((values.allow as string[] | undefined) ?? []);
  } finally {
    await sb.close();
  }
  return 0;
}

/** `sbx logs ID [--net] [--json]`: the sandbox's recent egress decisions (the only log there is, so --net is the default). */
export async function logsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECT, net: { type: "boolean" }, json: { type: "boolean" } });
  if (positionals.length !== 1) throw new UsageError("usage: sbx logs ID [--net] [--json]");
  const sb = await Sandbox.connect(positionals[0]!, await connectFor(values, "existing"));
  try {
    const log = await sb.egressLog();
    if (values.json) process.stdout.write(JSON.stringify(log, null, 2) + "\n");
    else for (const e of log) process.stdout.write(`${e.time}  ${e.allowed ? "allowed" : "BLOCKED"}  ${e.method} ${e.host}:${e.port}${e.reason ? `  (${e.reason})` : ""}\n`);
  } finally {
    await sb.close();
  }
  return 0;
}

/** `sbx usage --tenant NAME|--all`: billing data from the state dir's ledger, as a table, CSV or JSON. */
function tenantUsage(values: Record<string, any>): number {
  const format = values.format ?? (values.json ? "json" : "table");
  if (!["table", "csv", "json"].includes(format)) throw new UsageError(`--format expects table, csv or json (got '${format}')`);
  const now = Date.now();
  const stateDir = stateDirFrom(values);
  const report = usageReport(stateDir, {
    tenant: values.all ? null : values.tenant,
    since: values.since === undefined ? null : parseWhen(values.since, "--since", now),
    until: values.until === undefined ? now + 1 : parseWhen(values.until, "--until", now),
    now,
  });
  process.stdout.write(format === "csv" ? formatCsv(report) : format === "json" ? `${JSON.stringify(report, null, 2)}\n` : formatTable(report));
  return 0;
}
