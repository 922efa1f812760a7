import WebSocket from "ws";
import type { DaemonEndpoint } from "../discovery/discovery.js";
import type { Logger } from "../log.js";
import type { DaemonInfo } from "./placement.js";

export type HostState = "connecting" | "up" | "down" | "closed";

export interface HostEvents {
  /** The control link is open and the daemon said who it is (its id prefix). */
  onUp(host: Host): void;
  /** The daemon went away (or was found unusable): its sandboxes are lost to every session. */
  onLost(host: Host, reason: string): void;
}

const BACKOFF_MS = [500, 1000, 2000, 5000, 15_000];

/**
 * One daemon as the gateway sees it, through a control link: a WebSocket with the daemons'
 * operator token for daemon.info (its id prefix and capacity), kept alive with pings. The link
 * is how the gateway notices a host is gone: its closing, or a ping left unanswered for two
 * intervals, turns the host's sandboxes into "host lost" errors at once.
 */
export class Host {
  state: HostState = "connecting";
  info: DaemonInfo | null = null;
  /** Creates this gateway sent to the host and has not seen answered. */
  placing = 0;
  /** Why the host is down (for messages); empty while up. */
  downReason = "";
  /** The first connection attempt has ended (up, or failed): the gateway's view of this host is settled. */
  tried = false;
  private ws: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (info: DaemonInfo) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private heartbeat: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private attempts = 0;

  constructor(
    public endpoint: DaemonEndpoint,
    private readonly operatorToken: string,
    private readonly events: HostEvents,
    private readonly log: Logger,
    private readonly heartbeatMs: number,
  ) {}

  get url(): string {
    return this.endpoint.url;
  }

  /** Whether the daemon holds bound connections to their sandbox itself (daemon.info's features): only then may one go to the native relay. */
  get holdsBindings(): boolean {
    return this.info?.features?.includes("bind") ?? false;
  }

  get prefix(): string | null {
    return this.info?.idPrefix ?? null;
  }

  /** "node-a (ws://10.0.0.5:7070)", for messages. */
  get label(): string {
    return this.endpoint.name === this.url ? this.url : `${this.endpoint.name} (${this.url})`;
  }

  connect(): void {
    if (this.state === "closed") return;
    this.state = "connecting";
    const ws = new WebSocket(this.url, { headers: { Authorization: `Bearer ${this.operatorToken}` }, perMessageDeflate: false, maxPayload: 1 << 20, handshakeTimeout: 10_000 });
    this.ws = ws;
    let opened = false;
    ws.on("open", () => {
      opened = true;
      this.attempts = 0;
      this.startHeartbeat(ws);
      this.refresh(10_000).then(
        (info) => {
          if (ws !== this.ws) return;
          if (!info.idPrefix) return this.unusable(`it has no id prefix, so its sandboxes could not be routed: start it with --id-prefix (config idPrefix)`);
          this.state = "up";
          this.tried = true;
          this.downReason = "";
          this.events.onUp(this);
        },
        (err: Error) => this.unusable(`daemon.info failed: ${err.message}`),
      );
    });
    ws.on("message", (data: Buffer, isBinary) => !isBinary && this.onText(data.toString("utf8")));
    ws.on("unexpected-response", (_req, res) => {
      ws.terminate();
      this.lost(res.statusCode === 401 ? "it refused the gateway's operator token (HTTP 401): give the gateway the daemons' SBX_TOKEN" : `it refused the connection (HTTP ${res.statusCode})`);
    });
    ws.on("error", (err) => this.lost(opened ? err.message : `cannot connect: ${err.message}`));
    ws.on("close", (code, reason) => this.lost(`its connection closed (${code}${reason.length ? ` ${reason.toString()}` : ""})`));
  }

  /** Asks the daemon for fresh figures (placement does, for the few hosts it compares). */
  refresh(timeoutMs: number): Promise<DaemonInfo> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error(`not connected (${this.downReason || this.state})`));
    const id = this.nextId++;
    return new Promise<DaemonInfo>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer to daemon.info within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ jsonrpc: "2.0", id, method: "daemon.info", params: {} }));
    });
  }

  /** Discovery no longer lists the daemon: stop for good. */
  close(reason: string): void {
    if (this.state === "closed") return;
    const wasUp = this.state === "up";
    this.state = "closed";
    this.downReason = reason;
    this.teardown(reason);
    if (wasUp) this.events.onLost(this, reason);
  }

  private onText(text: string): void {
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    const p = typeof msg?.id === "number" ? this.pending.get(msg.id) : undefined;
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error) return p.reject(new Error(`${msg.error.message} (code ${msg.error.code})`));
    this.info = msg.result as DaemonInfo;
    p.resolve(this.info);
  }

  private startHeartbeat(ws: WebSocket): void {
    let answered = true;
    ws.on("pong", () => (answered = true));
    this.heartbeat = setInterval(() => {
      if (!answered) return this.lost(`it did not answer a ping within ${(2 * this.heartbeatMs) / 1000} s`);
      answered = false;
      ws.ping();
    }, this.heartbeatMs);
    this.heartbeat.unref();
  }

  /** The daemon answers but cannot be used: treated as down, and retried later (it may be reconfigured). */
  private unusable(reason: string): void {
    this.log.error(`daemon ${this.label} is not used: ${reason}`);
    this.lost(reason);
  }

  private lost(reason: string): void {
    if (this.state === "closed" || this.state === "down") return;
    this.tried = true;
    const wasUp = this.state === "up";
    this.state = "down";
    this.downReason = reason;
    this.teardown(reason);
    if (wasUp) {
      this.log.warn(`host lost: ${this.label}: ${reason}`);
      this.events.onLost(this, reason);
    }
    const delay = BACKOFF_MS[Math.min(this.attempts++, BACKOFF_MS.length - 1)]!;
    this.retry = setTimeout(() => this.connect(), delay);
    this.retry.unref();
  }

  private teardown(reason: string): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.retry) clearTimeout(this.retry);
    this.heartbeat = this.retry = null;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(reason));
    }
    this.pending.clear();
    const ws = this.ws;
    this.ws = null;
    ws?.removeAllListeners("close");
    ws?.removeAllListeners("error");
    ws?.on("error", () => {});
    ws?.terminate();
  }
}
