import WebSocket from "ws";
import { JSONRPCClient, JSONRPCErrorException } from "json-rpc-2.0";
import { ErrorCodes, HOST_LOST_CLOSE, decodeFrame, type MethodName, type NotificationName, type NotificationParams, type ParamsOf, type ResultOf } from "@sbx/protocol";
import { ConnectionClosedError, ConnectionEstablishmentError, NetworkError, fromRpcError } from "./errors.js";
import { isListening, startLocalDaemon } from "./embedded.js";
import { authFailure, maskingFor, resolveEndpoint, type ResolvedToken } from "./endpoint.js";
import { createMade, takeSpare } from "./spare.js";
import { StreamTable } from "./streams.js";
import type { ConnectOptions } from "./types.js";

type Listener<N extends NotificationName> = (params: NotificationParams<N>) => void;

/** `url` with `bind=<value>` in its query, its path and other params kept. */
function withBind(url: string, bind: string): string {
  const u = new URL(url);
  u.searchParams.set("bind", bind);
  return u.toString();
}

/** Opens the WebSocket at `target` (`url` with its bind); errors name `url`, the one the caller gave. */
function openSocket(url: string, target: string, token: ResolvedToken): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target, { headers: { Authorization: `Bearer ${token.value}` }, perMessageDeflate: false, maxPayload: 64 << 20, generateMask: maskingFor(target) });
    ws.binaryType = "nodebuffer";
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => {
      const status = res.statusCode ?? 0;
      ws.terminate();
      reject(status === 401 ? authFailure(url, token) : new ConnectionEstablishmentError(status, "UPGRADE_REFUSED", `the daemon at ${url} refused the connection (HTTP ${status})`));
    });
    ws.once("error", (err) => reject(new NetworkError(`cannot connect to the sbx daemon at ${url}: ${err.message}`, { cause: err })));
  });
}

/** One authenticated WebSocket to the daemon: JSON-RPC calls, notifications and byte streams. */
export class Connection {
  readonly streams: StreamTable;
  private readonly rpc: JSONRPCClient;
  private readonly listeners = new Map<string, Set<(params: any) => void>>();
  private closedWith: string | null = null;
  /** Set once the sandbox this connection serves has ended: what later calls reject with. */
  private retiredWith: (() => Error) | null = null;
  private inFlight = 0;
  private closeCode: number | undefined;
  private closeReason: string | undefined;
  /** Why the host of this (bound) connection's sandbox was lost, when a gateway closed it saying so. */
  private hostLost: string | null = null;
  private readonly closeListeners = new Set<(reason: string) => void>();
  private readonly closedPromise: Promise<void>;

  private constructor(private readonly ws: WebSocket, readonly url: string) {
    this.streams = new StreamTable((frame, payload, written) => this.sendBinary(frame, payload, written));
    this.rpc = new JSONRPCClient((payload) => {
      if (this.closedWith) throw this.closedError(`connection to ${url} is closed (${this.closedWith})`);
      ws.send(JSON.stringify(payload));
    });
    ws.on("message", (data: Buffer, isBinary) => (isBinary ? this.onBinary(data) : this.onText(data.toString("utf8"))));
    this.closedPromise = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.length ? reason.toString() : undefined;
        this.shutdown(`closed with code ${code}${reason.length ? `: ${reason.toString()}` : ""}`);
        resolve();
      });
    });
    ws.on("error", (err) => this.shutdown(err.message));
  }

  /**
   * Connects, starting a local daemon first when none runs and no url was given. `bind` (a
   * sandbox id, or "new" for a connection that makes one) promises the daemon or gateway that
   * every call on it is about that one sandbox; `url` stays the one given.
   */
  static async open(opts: ConnectOptions = {}, bind?: string): Promise<Connection> {
    const { url, token, embedded } = await resolveEndpoint(opts);
    const target = bind === undefined ? url : withBind(url, bind);
    const keyOf = (t: ResolvedToken) => `${target}\n${t.value}`;
    // A create's connection may have been opened ahead (spare.ts); one still open proves the
    // daemon runs. (A local daemon not started yet has no token file: that is read after.)
    const early = bind === "new" ? await token().catch(() => null) : null;
    const spare = early ? await takeSpare(keyOf(early)) : null;
    const started = !spare && embedded && !(await isListening(url));
    if (started) await startLocalDaemon(url);
    const resolved = early && !started ? early : await token();
    const conn = new Connection(spare ?? (await openSocket(url, target, resolved)), url);
    if (bind === "new") conn.createMade = () => createMade(keyOf(resolved), () => openSocket(url, target, resolved));
    return conn;
  }

  /** Set on a `bind=new` connection: call once its create has succeeded (the next create's connection may be opened ahead). */
  createMade: () => void = () => {};

  /** What a call on a closed connection rejects with. */
  closedError(message: string, cause?: unknown): ConnectionClosedError {
    return new ConnectionClosedError(this.closeCode, this.closeReason, { message, ...(cause === undefined ? {} : { cause }) });
  }

  /** Resolves once the WebSocket has closed. */
  get whenClosed(): Promise<void> {
    return this.closedPromise;
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  /** Calls a method; errors arrive as the SDK's error classes. */
  async request<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    if (this.retiredWith) throw this.retiredWith();
    if (this.closedWith) throw this.closedError(`connection to ${this.url} is closed (${this.closedWith})`);
    this.inFlight++;
    try {
      return (await this.rpc.request(method, params as never)) as ResultOf<M>;
    } catch (err) {
      // (re-read: the sandbox may have ended while this call was in flight)
      const retired = this.retiredWith as (() => Error) | null;
      // A gateway's words when it answers the call itself for a lost host, so either way reads the same.
      if (this.closedWith && this.hostLost !== null) throw fromRpcError({ code: ErrorCodes.Unavailable, message: `host lost during ${method}: ${this.hostLost}` });
      if (this.closedWith) throw retired?.() ?? this.closedError(`connection to ${this.url} closed during ${method} (${this.closedWith})`, err);
      if (err instanceof JSONRPCErrorException) throw fromRpcError(err);
      throw err;
    } finally {
      if (--this.inFlight === 0 && this.retiredWith) void this.close();
    }
  }

  /**
   * The sandbox this connection serves has ended. An open WebSocket keeps a Node process alive,
   * so a handle whose sandbox is gone would hold its script open forever: close once the calls
   * in flight have their answers (a `sandbox.kill` awaiting its own reply among them), and
   * reject later calls with `error()`.
   */
  retire(error: () => Error): void {
    if (this.retiredWith) return;
    this.retiredWith = error;
    if (this.inFlight === 0) void this.close();
  }

  on<N extends NotificationName>(method: N, listener: Listener<N>): () => void {
    let set = this.listeners.get(method);
    if (!set) this.listeners.set(method, (set = new Set()));
    set.add(listener);
    return () => set!.delete(listener);
  }

  /** Runs once when the connection is gone, whatever the cause. */
  onClose(listener: (reason: string) => void): void {
    if (this.closedWith) listener(this.closedWith);
    else this.closeListeners.add(listener);
  }

  /** A stream frame, or a DATA frame's header and payload as one message in two fragments (see Send in streams.ts). */
  sendBinary(frame: Uint8Array, payload?: Uint8Array, written?: () => void): void {
    if (this.closedWith) return written?.();
    if (!payload) return this.ws.send(frame);
    this.ws.send(frame, { binary: true, fin: false });
    this.ws.send(payload, { binary: true, fin: true }, written);
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close(1000, "client closed");
    await this.closedPromise;
  }

  private onText(text: string): void {
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg && typeof msg.method === "string" && msg.id === undefined) {
      for (const l of this.listeners.get(msg.method) ?? []) l(msg.params);
    } else this.rpc.receive(msg);
  }

  private onBinary(data: Buffer): void {
    const frame = decodeFrame(data);
    if (typeof frame !== "string") this.streams.onFrame(frame);
  }

  private shutdown(reason: string): void {
    if (this.closedWith) return;
    this.closedWith = reason;
    if (this.closeCode === HOST_LOST_CLOSE) {
      // A gateway passing a bound connection through lost the sandbox's host: its streams end as
      // if it had aborted each (as it does when it answers calls itself), before its calls fail.
      const why = this.closeReason ?? "the sandbox's host went away";
      this.hostLost = why.replace(/^host lost: /, "");
      this.streams.abortAll(why.startsWith("host lost: ") ? why : `host lost: ${why}`);
    }
    this.rpc.rejectAllPendingRequests(`connection closed: ${reason}`);
    this.streams.failAll(() => this.closedError(`connection to ${this.url} closed (${reason})`));
    for (const l of this.closeListeners) l(reason);
  }
}
