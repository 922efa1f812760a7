import { Readable } from "node:stream";
import { ErrorCodes, isSandboxId, type LIMIT_DEFAULTS, type ParamsOf, type ResultOf, type SignalName } from "@sbx/protocol";
import { Connection } from "./connection.js";
import { asDenoError, checkSizes, withoutDenoOptions, type DenoIgnoredOptions, type DenoUnsupportedOptions } from "./deno-options.js";
import { InvalidOptionError, NotSupportedError, RpcError, SandboxError, SandboxKillError, SandboxNotFoundError } from "./errors.js";
import { fetchInside } from "./runtimes/fetch.js";
import { listeningPorts } from "./runtimes/http.js";
import { SandboxEnv } from "./env.js";
import { SandboxFs } from "./fs/index.js";
import { pathOf } from "./fs/paths.js";
import { ChildProcess } from "./process.js";
import { ShCommand, shCommand } from "./sh.js";
import { SandboxDeno } from "./runtimes/deno.js";
import { SandboxPython } from "./runtimes/python.js";
import type { ReplStarter } from "./runtimes/repl.js";
import type { ConnectOptions, EgressEvent, ExitStatus, ProcessListing, SandboxInfo, Usage } from "./types.js";
import { snapshotOf, type Snapshot } from "./volumes.js";

type CreateParams = ParamsOf<"sandbox.create">;

/**
 * Options of `Sandbox.create`: the protocol's `sandbox.create` parameters (the compiler checks
 * every one is here and typed as the protocol types it) and where to connect.
 * Defaults come from the protocol's {@link LIMIT_DEFAULTS}.
 */
export interface SandboxOptions extends ConnectOptions, DenoIgnoredOptions, DenoUnsupportedOptions {
  /**
   * Memory cap: bytes or a size string, case-insensitive ("1GiB", "1.5G", "2GB"); default 1280MiB.
   * K, M, G, T alone or with "iB" are binary (1G = 1GiB = 2^30 bytes); with "B" alone decimal (1GB = 10^9).
   */
  memory?: CreateParams["memory"];
  /** CPU quota in cores; default 1. */
  cpus?: CreateParams["cpus"];
  /** Writable storage cap (home + tmp): bytes or a size string as for `memory`; default 10GiB. */
  disk?: CreateParams["disk"];
  /** "session" (default): killed when this connection goes away; or a duration: "90s", "5m", "1h30m" (units h, m, s, ms). */
  timeout?: "session" | `${number}${string}`;
  /** Default environment for every process. */
  env?: CreateParams["env"];
  /** Hosts the sandbox may reach; omitted or [] means no network at all. */
  allowNet?: CreateParams["allowNet"];
  /**
   * Secrets the sandbox can use but never read. Inside, `$NAME` holds `SBX_SECRET_<random>`;
   * the egress proxy puts `value` in its place only in HTTPS request headers (and bodies, with
   * `body: true`) to `hosts`, which are added to `allowNet`. Anywhere else the placeholder
   * blocks the request (403 with `X-Sbx-Error`), and values in responses come back as placeholders.
   */
  secrets?: CreateParams["secrets"];
  /** Labels to find the sandbox by with `Sandbox.list`. */
  labels?: CreateParams["labels"];
  /**
   * Volumes to mount: absolute path -> volume id or slug (read-write; one sandbox at a time) or
   * snapshot id or slug (read-only). Paths outside the system's (/usr, /etc, /proc, /dev, /.sbx...),
   * and not /, /home, /home/user or /tmp themselves. Root-mode daemons only.
   */
  volumes?: CreateParams["volumes"];
  /**
   * A volume or snapshot (id or slug) to boot from instead of the host's /usr and /etc, e.g. one
   * made by `sbx image build`. A snapshot root gets a private writable layer (counted in `disk`,
   * gone with the sandbox); a volume root is mounted read-write as / by one sandbox at a time and
   * keeps everything written to it, home and /tmp included. Root-mode daemons only.
   */
  root?: CreateParams["root"];
}

/** Fails to compile when the protocol gains a create parameter `SandboxOptions` does not offer, or types one differently. */
type Exactly<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _optionsCoverCreate: Exactly<keyof CreateParams, Exclude<keyof SandboxOptions, keyof ConnectOptions | keyof DenoIgnoredOptions | keyof DenoUnsupportedOptions>> & (Pick<SandboxOptions, keyof CreateParams> extends CreateParams ? true : false) = true;
void _optionsCoverCreate;

export type Stdio = "piped" | "inherit" | "null";
const STDIO_MODES: readonly Stdio[] = ["piped", "inherit", "null"];
const STDIN_MODES = ["piped", "null"] as const;

/** Refuses a stdio mode that is not one of `allowed`, naming the option. */
function checkStdio(name: string, mode: unknown, allowed: readonly string[]): void {
  if (typeof mode === "string" && allowed.includes(mode)) return;
  throw new InvalidOptionError(`${name}: must be ${allowed.map((m) => `"${m}"`).join(", ")}, not ${typeof mode === "string" ? JSON.stringify(mode.slice(0, 64)) : typeof mode}`, ErrorCodes.InvalidParams);
}

/** Options of `sandbox.spawn`. */
export interface SpawnOptions {
  args?: string[];
  /** Working directory (default /home/sandbox, the home). */
  cwd?: string | URL;
  /** Variables added to the sandbox's environment for this process. */
  env?: Record<string, string>;
  /** Start from an empty environment instead of the sandbox's. */
  clearEnv?: boolean;
  /**
   * Run as root: uid 0 of the sandbox's own user namespace, with HOME=/root (so `apt-get install`
   * works into the sandbox's writable layer). Only in a sandbox booted from an image (`root`);
   * elsewhere `UnsupportedError`. That root owns the image's files and the sandbox's processes,
   * nothing outside the sandbox.
   */
  sudo?: boolean;
  /**
   * Run on a terminal (a pty from the sandbox's own devpts): stdin and stdout are the terminal,
   * stderr arrives merged into stdout (the `stderr` option must be left out or "null").
   * Resize it with `ChildProcess.resize`.
   */
  pty?: boolean;
  /** The terminal's width with `pty` (default 80). */
  cols?: number;
  /** The terminal's height with `pty` (default 24). */
  rows?: number;
  /** "null" (default) or "piped" for a writable `stdin`. */
  stdin?: "piped" | "null";
  /** "piped" (default), "inherit" (copied to this process's stdout) or "null". */
  stdout?: Stdio;
  /** "piped" (default), "inherit" (copied to this process's stderr) or "null". */
  stderr?: Stdio;
  /** Aborting sends SIGTERM to the process. */
  signal?: AbortSignal;
}

/** The stream ids a call that starts a process names. */
type StreamIds = { stdin: number | null; stdout: number | null; stderr: number | null };

const KILLED: ExitStatus = { success: false, code: 137, signal: "SIGKILL", oom: false };

function toInfo(raw: ResultOf<"sandbox.connect">): SandboxInfo {
  return { ...raw, createdAt: new Date(raw.createdAt), expiresAt: raw.expiresAt ? new Date(raw.expiresAt) : null };
}

/**
 * A sandbox: an isolated Linux environment on the daemon's host.
 *
 * @example
 * await using sb = await Sandbox.create();
 * const out = await sb.sh`python3 -c ${"print(6 * 7)"}`.text(); // "42"
 */
export class Sandbox implements AsyncDisposable {
  /** The sandbox's files. */
  readonly fs: SandboxFs;
  /** The default environment of later spawns. */
  readonly env: SandboxEnv;
  /** Deno inside the sandbox: `eval`, stateful `repl()`, `run()`. */
  readonly deno: SandboxDeno;
  /** Python inside the sandbox, stateful: `eval`, `exec`, `repl()`. */
  readonly python: SandboxPython;
  /**
   * What the daemon said about this sandbox when it created it: a limit it cannot enforce here
   * (rootless daemons have no cgroups), or a disk cap it did not reserve. Empty when there is
   * nothing to say, and for a sandbox reached with `connect`.
   */
  warnings: readonly string[] = [];
  private readonly exitWaiters = new Map<number, (s: ExitStatus) => void>();
  private readonly earlyExits = new Map<number, ExitStatus>();
  private stopped = false;
  private networkListeners = 0;

  private constructor(
    private readonly conn: Connection,
    private info: SandboxInfo,
    private readonly connectOptions: ConnectOptions,
  ) {
    if (!(conn instanceof Connection)) throw new TypeError("Can not call 'Sandbox' constructor directly. Use 'Sandbox.create()' instead.");
    this.fs = new SandboxFs(conn, info.id);
    this.env = new SandboxEnv(conn, info.id);
    const startRepl: ReplStarter = (language, options, make) => {
      const { args, cwd, env, clearEnv } = options;
      const stdio = { stdin: "null", stdout: options.stdout ?? "inherit", stderr: options.stderr ?? "inherit" } as const;
      const start = async (ids: StreamIds) =>
        (await conn.request("repl.start", { sandbox: this.id, language, ...(args ? { args } : {}), ...(cwd ? { cwd } : {}), ...(env ? { env } : {}), ...(clearEnv ? { clearEnv } : {}), stdout: ids.stdout, stderr: ids.stderr })).pid;
      return this.launch(stdio, options.signal, start, make);
    };
    this.deno = new SandboxDeno((cmd, options, make) => this.spawnAs(cmd, options, make), startRepl);
    this.python = new SandboxPython(startRepl);
    conn.on("process.exit", ({ sandbox, pid, status }) => {
      if (sandbox !== this.id) return;
      const waiter = this.exitWaiters.get(pid);
      if (waiter) {
        this.exitWaiters.delete(pid);
        waiter(status);
      } else if (this.earlyExits.size < 1024) this.earlyExits.set(pid, status);
    });
    conn.on("sandbox.exit", ({ id }) => {
      if (id !== this.id) return;
      this.stopped = true;
      for (const waiter of this.exitWaiters.values()) waiter(KILLED);
      this.exitWaiters.clear();
      // Each handle has a connection of its own, so nothing else needs this one now; later
      // calls get what the daemon would have answered.
      conn.retire(() => new SandboxNotFoundError(`no running sandbox '${id}'`, ErrorCodes.SandboxNotFound));
    });
  }

  /**
   * Starts a new sandbox. Options of Deno's hosted sandboxes that mean nothing here (`region`,
   * `debug`, `org`, `apiEndpoint`, `sandboxEndpoint`) are ignored with a warning; a memory size
   * or timeout that cannot be read throws `InvalidMemoryError` or `InvalidTimeoutError`.
   */
  static async create(options: SandboxOptions = {}): Promise<Sandbox> {
    const { url, token, ...params } = withoutDenoOptions(options, "Sandbox.create");
    checkSizes(params);
    // Bound (bind=new): this connection makes this one sandbox and then talks only about it.
    const conn = await Connection.open({ url, token }, "new");
    try {
      const { warnings, ...info } = await conn.request("sandbox.create", params as ParamsOf<"sandbox.create">);
      const sb = new Sandbox(conn, toInfo(info), { url: conn.url, ...(token ? { token } : {}) });
      sb.warnings = warnings ?? [];
      conn.createMade();
      return sb;
    } catch (err) {
      await conn.close();
      throw asDenoError(err);
    }
  }

  /**
   * Attaches to a running sandbox of this token (adopting a session sandbox whose creator left):
   * `connect(id, options)` or, as Deno's also takes it, `connect({ id, ...options })`.
   */
  static async connect(idOrOptions: string | (ConnectOptions & DenoIgnoredOptions & { id: string }), connectOptions: ConnectOptions & DenoIgnoredOptions = {}): Promise<Sandbox> {
    const [id, given] = typeof idOrOptions === "string" ? [idOrOptions, connectOptions] : [idOrOptions.id, idOrOptions];
    if (typeof id !== "string") throw new TypeError(`Invalid sandbox ID: ${String(id)}`);
    const { id: _id, ...options } = withoutDenoOptions({ ...given, id }, "Sandbox.connect");
    // Bound to the sandbox; an id no daemon could have made goes unbound, to be answered "not found" as ever.
    const conn = await Connection.open(options, isSandboxId(id) ? id : undefined);
    try {
      return new Sandbox(conn, toInfo(await conn.request("sandbox.connect", { id })), { url: conn.url, ...(options.token ? { token: options.token } : {}) });
    } catch (err) {
      await conn.close();
      throw err;
    }
  }

  /** This token's sandboxes, optionally only those carrying all the given labels. */
  static async list(options: ConnectOptions & { labels?: Record<string, string> } = {}): Promise<SandboxInfo[]> {
    const { labels, ...connect } = options;
    const conn = await Connection.open(connect);
    try {
      return (await conn.request("sandbox.list", labels ? { labels } : {})).map(toInfo);
    } finally {
      await conn.close();
    }
  }

  /** The usage of any sandbox of this token, including one that ended in the last 24 hours (even if the daemon restarted since). */
  static async usageOf(id: string, options: ConnectOptions = {}): Promise<Usage> {
    const conn = await Connection.open(options);
    try {
      return await conn.request("sandbox.usage", { id });
    } finally {
      await conn.close();
    }
  }

  /** "sbx_" followed by 24 random url-safe characters. */
  get id(): string {
    return this.info.id;
  }

  get labels(): Record<string, string> {
    return { ...this.info.labels };
  }

  get createdAt(): Date {
    return this.info.createdAt;
  }

  /** When the sandbox will be killed, or null for a session sandbox. */
  get expiresAt(): Date | null {
    return this.info.expiresAt;
  }

  /**
   * Starts a process. Resolves once it runs; a missing command rejects with an `RpcError`
   * whose `errno` is "ENOENT".
   */
  spawn(command: string | URL, options: SpawnOptions = {}): Promise<ChildProcess> {
    return this.spawnAs(command, options, (...parts) => new ChildProcess(...parts));
  }

  /** `spawn`, building the handle with `make` (DenoProcess for `deno.run`). */
  private async spawnAs<P>(command: string | URL, options: SpawnOptions, make: (...parts: ConstructorParameters<typeof ChildProcess>) => P): Promise<P> {
    const { args, env, clearEnv, sudo } = options;
    // As Deno's: a file: URL names a path (any other URL is a TypeError).
    const cmd = pathOf(command);
    const cwd = options.cwd === undefined ? undefined : pathOf(options.cwd);
    const pty = ptyOf(options);
    const stdio = { stdin: options.stdin ?? "null", stdout: options.stdout ?? "piped", stderr: options.stderr ?? (pty ? "null" : "piped") } as const;
    if (pty && stdio.stderr !== "null") throw new InvalidOptionError(`stderr: must be "null" with pty (the terminal carries stderr in stdout), not "${stdio.stderr}"`, ErrorCodes.InvalidParams);
    const start = async (ids: StreamIds) =>
      (
        await this.conn.request("process.spawn", {
          sandbox: this.id,
          cmd,
          ...(args ? { args } : {}),
          ...(cwd ? { cwd } : {}),
          ...(env ? { env } : {}),
          ...(clearEnv ? { clearEnv } : {}),
          ...(sudo ? { sudo } : {}),
          ...ids,
          ...(pty ? { pty } : {}),
        })
      ).pid;
    return this.launch(stdio, options.signal, start, make);
  }

  /**
   * Starts a process with `start` (which names its streams in its call) and wires its stdio as
   * `spawn` does; `make` builds the handle (a ChildProcess or one of its runtimes' subclasses).
   */
  private async launch<P>(
    modes: { stdin: "piped" | "null"; stdout: Stdio; stderr: Stdio },
    signal: AbortSignal | undefined,
    start: (ids: StreamIds) => Promise<number>,
    make: (...parts: ConstructorParameters<typeof ChildProcess>) => P,
  ): Promise<P> {
    // Checked here, not only typed: a mode nobody reads would leave its stream unread, and the process stalled on it.
    checkStdio("stdin", modes.stdin, STDIN_MODES);
    checkStdio("stdout", modes.stdout, STDIO_MODES);
    checkStdio("stderr", modes.stderr, STDIO_MODES);
    const stdin = modes.stdin === "piped" ? this.conn.streams.outgoing() : null;
    const stdout = modes.stdout === "null" ? null : this.conn.streams.incoming();
    const stderr = modes.stderr === "null" ? null : this.conn.streams.incoming();
    signal?.throwIfAborted();
    let pid: number;
    try {
      pid = await start({ stdin: stdin?.id ?? null, stdout: stdout?.id ?? null, stderr: stderr?.id ?? null });
    } catch (err) {
      for (const s of [stdin, stdout, stderr]) s?.fail(err as Error);
      throw err;
    }
    const status = this.waitForExit(pid);
    if (modes.stdout === "inherit") copyTo(stdout!.readable, process.stdout);
    if (modes.stderr === "inherit") copyTo(stderr!.readable, process.stderr);
    if (signal) {
      const onAbort = () => void this.conn.request("process.kill", { sandbox: this.id, pid, signal: "SIGTERM" }).catch(() => {});
      signal.addEventListener("abort", onAbort, { once: true });
      status.finally(() => signal.removeEventListener("abort", onAbort)).catch(() => {});
    }
    return make(
      this.conn,
      this.id,
      pid,
      stdin?.writable ?? null,
      modes.stdout === "piped" ? stdout!.readable : null,
      modes.stderr === "piped" ? stderr!.readable : null,
      status,
    );
  }

  /**
   * A bash command from a template; every substitution is shell-escaped (arrays become
   * several words; null and undefined the empty word; objects are refused). Await it, or call
   * `.text()`, `.json()`, `.noThrow()`, `.spawn()`. A property, as Deno's: `const { sh } = sandbox` works.
   *
   * @example
   * const listing = await sb.sh`ls -la ${dir}`.text();
   */
  readonly sh = (strings: TemplateStringsArray, ...values: unknown[]): ShCommand =>
    shCommand((script, opts) => this.spawn("bash", { args: ["-c", script], stdin: "null", ...opts }), strings, values);

  /** Resolves when this handle's connection closes (by `close`, `kill`, the sandbox ending, or the daemon going away). */
  get closed(): Promise<void> {
    return this.conn.whenClosed;
  }

  /**
   * The processes started in this sandbox (by any client of this token) that can be attached to:
   * running or recently ended, with the byte range of their output the daemon still keeps.
   */
  async processes(): Promise<ProcessListing[]> {
    return (await this.conn.request("process.list", { sandbox: this.id })).processes.map((p) => ({ ...p, startedAt: new Date(p.startedAt) }));
  }

  /**
   * Attaches to a process again, typically after `Sandbox.connect` from a new connection: its
   * stdout and stderr from byte offsets (default: the earliest the daemon keeps, the last 1 MiB
   * of each) and then live; this connection hears its exit. While no client is attached the
   * process runs on and the daemon keeps the tail of its output. An offset no longer kept is
   * refused with an error naming the earliest one kept.
   *
   * @example
   * const sb = await Sandbox.connect(id);
   * const [build] = (await sb.processes()).filter((p) => p.running);
   * const p = await sb.attach(build.pid, { stdoutFrom: seenSoFar });
   */
  async attach(pid: number, options: { stdoutFrom?: number; stderrFrom?: number; stdout?: "piped" | "null"; stderr?: "piped" | "null" } = {}): Promise<ChildProcess & { stdoutFrom: number | null; stderrFrom: number | null }> {
    let offsets = { stdoutFrom: null as number | null, stderrFrom: null as number | null };
    let ended: ExitStatus | null = null;
    const start = async (ids: StreamIds) => {
      const r = await this.conn.request("process.attach", {
        sandbox: this.id,
        pid,
        stdout: ids.stdout,
        stderr: ids.stderr,
        ...(options.stdoutFrom !== undefined ? { stdoutFrom: options.stdoutFrom } : {}),
        ...(options.stderrFrom !== undefined ? { stderrFrom: options.stderrFrom } : {}),
      });
      offsets = { stdoutFrom: r.stdoutFrom, stderrFrom: r.stderrFrom };
      ended = r.status ?? null;
      if (ended) this.earlyExits.set(pid, ended);
      return pid;
    };
    const modes = { stdin: "null", stdout: options.stdout ?? "piped", stderr: options.stderr ?? "piped" } as const;
    const child = await this.launch(modes, undefined, start, (...parts) => new ChildProcess(...parts));
    return Object.assign(child, offsets);
  }

  /**
   * Makes an HTTP server inside the sandbox reachable at a URL on the daemon's host, until the
   * sandbox ends: `{ port }`, or `{ pid }` for the port a process listens on. The URL carries an
   * unguessable token as its first path segment (the daemon's own token is never needed or
   * accepted there); `public: true` serves it without one. The sandbox itself gets no inbound
   * network: the daemon relays each connection through its supervisor.
   *
   * @example
   * await sb.deno.run({ code: "Deno.serve({ port: 8000 }, () => new Response('hi'))" }).then((p) => p.httpReady);
   * const url = await sb.exposeHttp({ port: 8000 });   // http://127.0.0.1:41234/Xy.../
   * await (await fetch(url)).text();                   // "hi"
   */
  async exposeHttp(target: { port: number; public?: boolean } | { pid: number; public?: boolean }): Promise<string> {
    let port: number;
    if ("pid" in target) {
      const [first] = await listeningPorts(this.conn, this.id, target.pid);
      if (first === undefined) throw new SandboxError(`process ${target.pid} listens on no TCP port (yet)`);
      port = first;
    } else port = target.port;
    return (await this.conn.request("net.exposeHttp", { sandbox: this.id, port, ...(target.public ? { public: true } : {}) })).url;
  }

  /**
   * Sends an HTTP request to a server inside the sandbox (`http://localhost:PORT/...`) without
   * exposing it: the connection is opened on the sandbox's loopback and relayed by the daemon.
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    return fetchInside(this.conn, this.id, input, init, null);
  }

  /** Not supported: sbx gives no SSH access to sandboxes. */
  async exposeSsh(): Promise<never> {
    throw new NotSupportedError("exposeSsh: sbx gives no SSH access to sandboxes; for an interactive terminal use `sbx shell <id>` (CLI) or spawn(cmd, { pty: true }); run commands with sandbox.spawn or sandbox.sh");
  }

  /** Not supported: sbx cannot expose VS Code from a sandbox. */
  async exposeVscode(_path?: string, _options?: unknown): Promise<never> {
    throw new NotSupportedError("exposeVscode: sbx cannot expose VS Code from a sandbox");
  }

  /** Sets the expiry to `duration` from now ("30s", "5m", "1h30m"), as Deno's does; a session sandbox becomes a timed one. Resolves to the new expiry. */
  /** Pushes the expiry back by `duration` ("30s", "5m", "1h30m"); a session sandbox becomes a timed one. */
  async extendTimeout(duration: string): Promise<Date> {
    const { expiresAt } = await this.conn.request("sandbox.extendTimeout", { id: this.id, duration });
    this.info = { ...this.info, expiresAt: new Date(expiresAt) };
    return this.info.expiresAt!;
  }

  /**
   * What the sandbox used so far (or in all, once it ended): CPU seconds, peak memory,
   * memory GB-seconds, disk bytes, wall seconds and egress counters.
   */
  async usage(): Promise<Usage> {
    // A sandbox that ended is read through a fresh connection (this one closes when it ends).
    if (this.stopped || this.conn.closed) return Sandbox.usageOf(this.id, this.connectOptions);
    return this.conn.request("sandbox.usage", { id: this.id });
  }

  /**
   * Replaces the hosts the sandbox may reach (same forms as `allowNet` at create); open
   * connections no longer allowed are closed. `[]` cuts it off.
   */
  async setAllowNet(allowNet: string[]): Promise<void> {
    await this.conn.request("sandbox.setAllowNet", { id: this.id, allowNet });
  }

  /** Recent egress decisions, oldest first: time, host, port, allowed, and why not. */
  async egressLog(limit?: number): Promise<EgressEvent[]> {
    return this.conn.request("sandbox.egressLog", { id: this.id, ...(limit ? { limit } : {}) });
  }

  /**
   * Calls `listener` with every egress decision from now on; returns a function that stops it.
   *
   * @example
   * const stop = await sb.onNetwork((e) => console.log(e.allowed ? "ok" : "blocked", e.host, e.reason ?? ""));
   */
  async onNetwork(listener: (event: EgressEvent) => void): Promise<() => Promise<void>> {
    const off = this.conn.on("sandbox.network", ({ id, event }) => {
      if (id === this.id) listener(event);
    });
    if (this.networkListeners++ === 0) await this.conn.request("sandbox.watchNetwork", { id: this.id, enabled: true });
    return async () => {
      off();
      if (--this.networkListeners === 0 && !this.stopped && !this.conn.closed) await this.conn.request("sandbox.watchNetwork", { id: this.id, enabled: false });
    };
  }

  /**
   * A read-only snapshot of this sandbox's writable storage (its home and /tmp, frozen for the
   * copy; beyond @deno/sandbox): mount it with `volumes`, or start a volume `from` it. Root-mode daemons.
   */
  async snapshot(init: { slug: string }): Promise<Snapshot> {
    return snapshotOf(await this.conn.request("sandbox.snapshot", { id: this.id, slug: init.slug }));
  }

  /**
   * Destroys the sandbox now and closes this connection (`usage()` still works afterwards). A
   * sandbox already gone rejects with `SandboxNotFoundError`; any other refusal with `SandboxKillError`.
   */
  async kill(): Promise<void> {
    try {
      if (!this.stopped) await this.conn.request("sandbox.kill", { id: this.id });
      this.stopped = true;
    } catch (err) {
      if (err instanceof RpcError && !(err instanceof SandboxNotFoundError)) throw new SandboxKillError(err.rpcCode, err.message, { cause: err });
      throw err;
    } finally {
      await this.conn.close();
    }
  }

  /** Closes this connection; a "session" sandbox created here dies after a short grace period, a timed one lives on. */
  async close(): Promise<void> {
    await this.conn.close();
  }

  /**
   * Closes the connection, as Deno's does: a "session" sandbox created here then dies by its own
   * rule (shortly after), a timed one lives on until its timeout. `kill()` destroys it at once.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private waitForExit(pid: number): Promise<ExitStatus> {
    const early = this.earlyExits.get(pid);
    if (early) {
      this.earlyExits.delete(pid);
      return Promise.resolve(early);
    }
    if (this.stopped) return Promise.resolve(KILLED);
    const status = new Promise<ExitStatus>((resolve, reject) => {
      this.exitWaiters.set(pid, resolve);
      this.conn.onClose((reason) => {
        if (this.exitWaiters.delete(pid)) reject(this.conn.closedError(`lost the connection before process ${pid} exited (${reason})`));
      });
    });
    status.catch(() => {}); // callers who never look at the status must not crash the process
    return status;
  }
}

/** The terminal `spawn` asks for, checked here so that a bad size names the option. */
function ptyOf(options: SpawnOptions): { cols: number; rows: number } | null {
  if (!options.pty) {
    if (options.cols !== undefined || options.rows !== undefined) throw new InvalidOptionError("cols/rows: only with pty: true", ErrorCodes.InvalidParams);
    return null;
  }
  const size = { cols: options.cols ?? 80, rows: options.rows ?? 24 };
  for (const [k, v] of Object.entries(size)) {
    if (!Number.isInteger(v) || v < 1 || v > 65535) throw new InvalidOptionError(`${k}: must be an integer from 1 to 65535, not ${v}`, ErrorCodes.InvalidParams);
  }
  return size;
}

function copyTo(readable: ReadableStream<Uint8Array>, out: NodeJS.WritableStream): void {
  Readable.fromWeb(readable as never).on("error", () => {}).pipe(out, { end: false });
}

export type { SignalName };
