import WebSocket from "ws";
import type { Host } from "../fleet/host.js";
import type { ByteBudget } from "../net/budget.js";
import { Link } from "../net/link.js";

/** Largest message accepted from a daemon: what the SDK accepts from one (a big directory listing). */
export const MAX_UPSTREAM_MESSAGE = 64 << 20;
/** Sandbox ids remembered per upstream, to tell the client which of its sandboxes a lost host took. */
const MAX_TOUCHED = 4096;

/** A call in flight on an upstream: the client's own (answered to it) or the gateway's (handed to `internal`). */
export interface Pending {
  clientId: number | string;
  method: string;
  /** The upstream id differs from the client's (answers get the client's id back). */
  remapped: boolean;
  /** The gateway's own call: gets the answer message, or the Error that ended the connection first. */
  internal?: (answer: any) => void;
}

/** What an upstream tells the session that owns it. */
export interface UpstreamOwner {
  answered(up: Upstream, pending: Pending, text: string, msg: any): void;
  notified(up: Upstream, text: string, msg: any): void;
  binary(up: Upstream, data: Buffer): void;
  /** The connection ended without the session asking: `code` is the WebSocket close code (1006 when it just broke). */
  gone(up: Upstream, reason: string, code: number, closeReason: string): void;
}

/**
 * One client's connection to one daemon, made with the client's own token (so the daemon,
 * not the gateway, decides what that tenant may see), opened on the first call that needs it.
 * The client's JSON-RPC ids pass through as they are when they are non-negative integers not
 * in flight here; the rest, and the gateway's own calls, get negative ids mapped back on the
 * answer, so the two can never be confused.
 */
export class Upstream {
  readonly link: Link;
  readonly pending = new Map<number, Pending>();
  /** The client's stream ids this upstream carries. */
  readonly streams = new Set<number>();
  /** Sandboxes the client reached through here (created, connected, called). */
  readonly touched = new Set<string>();
  private queue: Array<string | Buffer> | null = [];
  private queuedBytes = 0;
  private nextInternal = -1;
  private ended = false;

  constructor(readonly host: Host, token: string, private readonly owner: UpstreamOwner, gateway: ByteBudget) {
    const ws = new WebSocket(host.url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false, maxPayload: MAX_UPSTREAM_MESSAGE, handshakeTimeout: 10_000 });
    ws.binaryType = "nodebuffer";
    this.link = new Link(ws, gateway);
    ws.on("open", () => {
      const queued = this.queue ?? [];
      this.dropQueue();
      for (const data of queued) this.link.send(data);
    });
    ws.on("message", (data: Buffer, isBinary) => (isBinary ? owner.binary(this, data) : this.onText(data.toString("utf8"))));
    ws.on("unexpected-response", (_req, res) => {
      ws.removeAllListeners("close");
      ws.terminate();
      this.end(
        res.statusCode === 401
          ? `the sbx daemon ${host.label} refused this token (HTTP 401): every daemon behind the gateway must accept the gateway's tokens`
          : `the sbx daemon ${host.label} refused the connection (HTTP ${res.statusCode})`,
        1006,
        "",
      );
    });
    ws.on("error", (err) => this.end(`lost the connection to the sbx daemon ${host.label}: ${err.message}`, 1006, ""));
    ws.on("close", (code, reason) => this.end(`the sbx daemon ${host.label} closed the connection (${code}${reason.length ? `: ${reason.toString()}` : ""})`, code, reason.toString()));
  }

  /** Forwards a client's call (its text, unchanged unless its id must be remapped). */
  forward(text: string, msg: { id: number | string; method: string }, sandbox: string | null): void {
    let id = msg.id;
    if (!(typeof id === "number" && Number.isSafeInteger(id) && id >= 0 && !this.pending.has(id))) {
      id = this.nextInternal--;
      text = JSON.stringify({ ...msg, id });
    }
    this.pending.set(id as number, { clientId: msg.id, method: msg.method, remapped: id !== msg.id });
    if (sandbox) this.touch(sandbox);
    this.send(text);
  }

  /**
   * The gateway's own call (placement's create, list's fan-out). `onAnswer` runs inside the
   * handler of the answer's message, before any later message of this daemon is looked at, so
   * what it sends the client keeps the daemon's order (a create's answer before the new
   * sandbox's first notification). It gets an Error instead if the connection ends first.
   */
  call(method: string, params: unknown, clientId: number | string, onAnswer: (answer: any) => void, timeoutMs = 0): void {
    const id = this.nextInternal--;
    const timer = timeoutMs > 0 ? setTimeout(() => this.pending.delete(id) && onAnswer(new Error(`no answer to ${method} within ${timeoutMs / 1000} s`)), timeoutMs) : null;
    const internal = (answer: any) => {
      if (timer) clearTimeout(timer);
      onAnswer(answer);
    };
    this.pending.set(id, { clientId, method, remapped: true, internal });
    this.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
  }

  /** `call` as a promise, for callers to whom the order of later messages does not matter. */
  request(method: string, params: unknown, clientId: number | string, timeoutMs = 0): Promise<any> {
    return new Promise((resolve, reject) => this.call(method, params, clientId, (a) => (a instanceof Error ? reject(a) : resolve(a)), timeoutMs));
  }

  send(data: string | Buffer): void {
    if (this.ended) return;
    if (!this.queue) return this.link.send(data);
    this.queue.push(data);
    // Counted like sent bytes, so a client racing ahead of the handshake is held back too.
    const n = typeof data === "string" ? data.length : data.byteLength;
    this.queuedBytes += n;
    this.link.budget.add(n);
  }

  touch(id: string): void {
    this.touched.delete(id);
    this.touched.add(id);
    if (this.touched.size > MAX_TOUCHED) this.touched.delete(this.touched.values().next().value!);
  }

  /** The session is done with it (the client left): close without telling the session. */
  close(): void {
    this.ended = true;
    this.dropQueue();
    this.rejectInternal("the client connection closed");
    this.link.ws.removeAllListeners("close");
    this.link.ws.removeAllListeners("error");
    this.link.ws.on("error", () => {});
    if (this.link.ws.readyState === WebSocket.CONNECTING) this.link.ws.terminate();
    else this.link.ws.close(1000, "client closed");
  }

  /** The host is lost: drop the connection now and let the session clean up. */
  abandon(reason: string): void {
    this.link.ws.removeAllListeners("close");
    this.link.ws.terminate();
    this.end(reason, 1006, "");
  }

  private onText(text: string): void {
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg && typeof msg.method === "string" && msg.id === undefined) return this.owner.notified(this, text, msg);
    const pending = typeof msg?.id === "number" ? this.pending.get(msg.id) : undefined;
    if (!pending) return;
    this.pending.delete(msg.id);
    if (pending.internal) pending.internal(msg);
    else this.owner.answered(this, pending, text, msg);
  }

  private dropQueue(): void {
    this.queue = null;
    this.link.budget.sub(this.queuedBytes);
    this.queuedBytes = 0;
  }

  private end(reason: string, code: number, closeReason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.dropQueue();
    this.rejectInternal(reason);
    this.owner.gone(this, reason, code, closeReason);
  }

  private rejectInternal(reason: string): void {
    for (const [id, p] of this.pending) {
      if (!p.internal) continue;
      this.pending.delete(id);
      p.internal(new Error(reason));
    }
  }
}
