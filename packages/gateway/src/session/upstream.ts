import type { Host } from "../fleet/host.js";
import type { ByteBudget } from "../net/budget.js";
import { DaemonSocket } from "../net/daemon-socket.js";
import { Link } from "../net/link.js";
import type { Surrendered } from "../net/surrender.js";

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
  /** The answer to a client's call, with the client's id: `raw` is the daemon's frame when it can pass as it is. */
  answered(up: Upstream, pending: Pending, text: string, raw: Buffer[] | null): void;
  notified(up: Upstream, text: string, raw: Buffer[] | null): void;
  /** A binary frame (`raw`, a server frame's bytes), its first payload byte (the stream op) and stream id (-1 when too short to have them). */
  binary(up: Upstream, raw: Buffer[], op: number, stream: number): void;
  /** The connection ended without the session asking: `code` is the WebSocket close code (1006 when it just broke). */
  gone(up: Upstream, reason: string, code: number, closeReason: string): void;
  /** The handshake is done and what waited for it is sent. */
  opened(up: Upstream): void;
}

/** A daemon URL with the client's `bind` (see @sbx/protocol's parseBind), so the daemon holds the connection to it too. */
export function boundUrl(url: string, bind: string | null): string {
  if (bind === null) return url;
  const u = new URL(url);
  u.searchParams.set("bind", bind);
  return u.toString();
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
  private readonly socket: DaemonSocket;
  readonly pending = new Map<number, Pending>();
  /** The client's stream ids this upstream carries. */
  readonly streams = new Set<number>();
  /** Sandboxes the client reached through here (created, connected, called). */
  readonly touched = new Set<string>();
  /** What waits for the handshake: messages, and whole frames (a client's, re-masked). */
  private queue: Array<string | Buffer | Buffer[]> | null = [];
  private queuedBytes = 0;
  private nextInternal = -1;
  private ended = false;

  constructor(readonly host: Host, token: string, private readonly owner: UpstreamOwner, gateway: ByteBudget, bind: string | null = null) {
    let link: Link | null = null;
    this.socket = new DaemonSocket(boundUrl(host.url, bind), { Authorization: `Bearer ${token}` }, MAX_UPSTREAM_MESSAGE, 10_000, {
      open: () => {
        const queued = this.queue ?? [];
        this.dropQueue();
        for (const data of queued) {
          if (Array.isArray(data)) link!.sendFrame(data);
          else link!.send(data);
        }
        owner.opened(this);
      },
      text: (text, raw) => this.onText(text, raw),
      binary: (raw, op, stream) => owner.binary(this, raw, op, stream),
      refused: (status) =>
        this.end(
          status === 401
            ? `the sbx daemon ${host.label} refused this token (HTTP 401): every daemon behind the gateway must accept the gateway's tokens`
            : `the sbx daemon ${host.label} refused the connection (HTTP ${status})`,
          1006,
          "",
        ),
      ended: (code, reason, error) =>
        this.end(
          error ? `lost the connection to the sbx daemon ${host.label}: ${error.message}` : `the sbx daemon ${host.label} closed the connection (${code}${reason.length ? `: ${reason}` : ""})`,
          code,
          reason,
        ),
    });
    this.link = link = new Link(this.socket, gateway);
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
    this.enqueue(data, typeof data === "string" ? data.length : data.byteLength);
  }

  /** Sends a client's binary frame, re-masked (`remask`): its bytes pass on without a copy. */
  sendFrame(parts: Buffer[]): void {
    if (this.ended) return;
    if (!this.queue) return this.link.sendFrame(parts);
    let n = 0;
    for (const p of parts) n += p.length;
    this.enqueue(parts, n);
  }

  private enqueue(data: string | Buffer | Buffer[], n: number): void {
    this.queue!.push(data);
    // Counted like sent bytes, so a client racing ahead of the handshake is held back too.
    this.queuedBytes += n;
    this.link.budget.add(n);
  }

  touch(id: string): void {
    this.touched.delete(id);
    this.touched.add(id);
    if (this.touched.size > MAX_TOUCHED) this.touched.delete(this.touched.values().next().value!);
  }

  /** Open, nothing in flight, queued, unwritten or half-read: the connection could change hands. */
  get quiet(): boolean {
    return !this.ended && this.queue === null && this.pending.size === 0 && this.streams.size === 0 && this.link.idle && this.socket.quiet;
  }

  /** Gives the daemon connection up to another process (once `quiet`); nothing more is reported. */
  surrender(): Surrendered {
    this.ended = true;
    this.link.release();
    return this.socket.surrender();
  }

  /** The session is done with it (the client left): close without telling the session. */
  close(): void {
    this.ended = true;
    this.dropQueue();
    this.rejectInternal("the client connection closed");
    this.socket.close(1000, "client closed");
    this.link.release();
  }

  /** The host is lost: drop the connection now and let the session clean up. */
  abandon(reason: string): void {
    this.end(reason, 1006, "");
    this.socket.terminate();
  }

  /**
   * A daemon's message, looked at only as far as routing needs: an answer's id and a
   * notification's method are read off the front of the text when it has the shape the daemon
   * writes (`{"jsonrpc":"2.0","id":7,...`, `{"jsonrpc":"2.0","method":"...`), and the whole
   * text is parsed only otherwise, for the gateway's own calls and for sandbox.exit.
   */
  private onText(text: string, raw: Buffer[] | null): void {
    const at = answerId(text);
    if (at) {
      const pending = this.pending.get(at.id);
      if (!pending) return;
      this.pending.delete(at.id);
      if (pending.internal) return this.internal(pending, text);
      if (!pending.remapped) return this.owner.answered(this, pending, text, raw);
      return this.owner.answered(this, pending, `${ANSWER}${JSON.stringify(pending.clientId)}${text.slice(at.end)}`, null);
    }
    const method = notificationMethod(text);
    if (method !== null && method !== "sandbox.exit") return this.owner.notified(this, text, raw);
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg && typeof msg.method === "string" && msg.id === undefined) {
      if (msg.method === "sandbox.exit" && typeof msg.params?.id === "string") this.touched.delete(msg.params.id);
      return this.owner.notified(this, text, raw);
    }
    const pending = typeof msg?.id === "number" ? this.pending.get(msg.id) : undefined;
    if (!pending) return;
    this.pending.delete(msg.id);
    if (pending.internal) pending.internal(msg);
    else if (pending.remapped) this.owner.answered(this, pending, JSON.stringify({ ...msg, id: pending.clientId }), null);
    else this.owner.answered(this, pending, text, raw);
  }

  private internal(pending: Pending, text: string): void {
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch (err) {
      msg = new Error(`the sbx daemon ${this.host.label} answered ${pending.method} with invalid JSON: ${(err as Error).message}`);
    }
    pending.internal!(msg);
  }

  private dropQueue(): void {
    this.queue = null;
    this.link.budget.sub(this.queuedBytes);
    this.queuedBytes = 0;
  }

  private end(reason: string, code: number, closeReason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.link.release();
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

const ANSWER = '{"jsonrpc":"2.0","id":';
const NOTIFICATION = '{"jsonrpc":"2.0","method":"';

/**
 * The integer id at the front of an answer as the daemon writes it (`{"jsonrpc":"2.0","id":-12,`),
 * and where it ends; null for any other text (which is then parsed).
 */
export function answerId(text: string): { id: number; end: number } | null {
  if (!text.startsWith(ANSWER)) return null;
  let i = ANSWER.length;
  const negative = text.charCodeAt(i) === 45; // -
  if (negative) i++;
  const start = i;
  let id = 0;
  for (let c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i)) id = id * 10 + (c - 48);
  const digits = i - start;
  if (digits === 0 || digits > 15 || (digits > 1 && text.charCodeAt(start) === 48) || text.charCodeAt(i) !== 44) return null;
  return { id: negative ? -id : id, end: i };
}

/** The method at the front of a notification as the daemon writes it, or null. */
export function notificationMethod(text: string): string | null {
  if (!text.startsWith(NOTIFICATION)) return null;
  const end = text.indexOf('"', NOTIFICATION.length);
  return end < 0 ? null : text.slice(NOTIFICATION.length, end);
}
