import { Readable } from "node:stream";
import { ErrorCodes, type LIMIT_DEFAULTS, type ParamsOf, type ResultOf, type SignalName } from "@sbx/protocol";
import { Connection } from "./connection.js";
import { asDenoError, checkSizes, withoutDenoOptions, type DenoIgnoredOptions, type DenoUnsupportedOptions } from "./deno-options.js";
import { NotSupportedError, RpcError, SandboxKillError, SandboxNotFoundError } from "./errors.js";
import { SandboxEnv } from "./env.js";
import { SandboxFs } from "./fs/index.js";
import { pathOf } from "./fs/paths.js";
import { ChildProcess } from "./process.js";
import { ShCommand, shCommand } from "./sh.js";
import type { ConnectOptions, EgressEvent, ExitStatus, SandboxInfo, Usage } from "./types.js";
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
}

/** Fails to compile when the protocol gains a create parameter `SandboxOptions` does not offer, or types one differently. */
type Exactly<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _optionsCoverCreate: Exactly<keyof CreateParams, Exclude<keyof SandboxOptions, keyof ConnectOptions | keyof DenoIgnoredOptions | keyof DenoUnsupportedOptions>> & (Pick<SandboxOptions, keyof CreateParams> extends CreateParams ? true : false) = true;
void _optionsCoverCreate;

export type Stdio = "piped" | "inherit" | "null";

/** Options of `sandbox.spawn`. */
export interface SpawnOptions {
  args?: string[];
  /** Working directory (default /home/sandbox, the home). */
  cwd?: string | URL;
  /** Variables added to the sandbox's environment for this process. */
  env?: Record<string, string>;
  /** Start from an empty environment instead of the sandbox's. */
  clearEnv?: boolean;
  /** "null" (default) or "piped" for a writable `stdin`. */
  stdin?: "piped" | "null";
  /** "piped" (default), "inherit" (copied to this process's stdout) or "null". */
  stdout?: Stdio;
  /** "piped" (default), "inherit" (copied to this process's stderr) or "null". */
  stderr?: Stdio;
  /** Aborting sends SIGTERM to the process. */
  signal?: AbortSignal;
}

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
    const conn = await Connection.open({ url, token });
    try {
      const { warnings, ...info } = await conn.request("sandbox.create", params as ParamsOf<"sandbox.create">);
      const sb = new Sandbox(conn, toInfo(info), { url: conn.url, ...(token ? { token } : {}) });
      sb.warnings = warnings ?? [];
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
    const conn = await Connection.open(options);
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
  async spawn(command: string | URL, options: SpawnOptions = {}): Promise<ChildProcess> {
    const { args, env, clearEnv, signal } = options;
    // As Deno's: a file: URL names a path (any other URL is a TypeError).
    const cmd = pathOf(command);
    const cwd = options.cwd === undefined ? undefined : pathOf(options.cwd);
    const modes = { stdin: options.stdin ?? "null", stdout: options.stdout ?? "piped", stderr: options.stderr ?? "piped" };
    const stdin = modes.stdin === "piped" ? this.conn.streams.outgoing() : null;
    const stdout = modes.stdout === "null" ? null : this.conn.streams.incoming();
    const stderr = modes.stderr === "null" ? null : this.conn.streams.incoming();
    signal?.throwIfAborted();
    let pid: number;
    try {
      ({ pid } = await this.conn.request("process.spawn", {
        sandbox: this.id,
        cmd,
        ...(args ? { args } : {}),
        ...(cwd ? { cwd } : {}),
        ...(env ? { env } : {}),
        ...(clearEnv ? { clearEnv } : {}),
        stdin: stdin?.id ?? null,
        stdout: stdout?.id ?? null,
        stderr: stderr?.id ?? null,
      }));
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
    return new ChildProcess(
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

  /** Not supported: sbx gives no SSH access to sandboxes. */
  async exposeSsh(): Promise<never> {
    throw new NotSupportedError("exposeSsh: sbx gives no SSH access to sandboxes; run commands with sandbox.spawn or sandbox.sh");
  }

  /** Not supported: sbx cannot expose VS Code from a sandbox. */
  async exposeVscode(_path?: string, _options?: unknown): Promise<never> {
    throw new NotSupportedError("exposeVscode: sbx cannot expose VS Code from a sandbox");
  }

  /** Sets the expiry to `duration` from now ("30s", "5m", "1h30m"), as Deno's does; a session sandbox becomes a timed one. Resolves to the new expiry. */
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

function copyTo(readable: ReadableStream<Uint8Array>, out: NodeJS.WritableStream): void {
  Readable.fromWeb(readable as never).on("error", () => {}).pipe(out, { end: false });
}

export type { SignalName };
