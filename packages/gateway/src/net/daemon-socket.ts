import { createHash, randomBytes } from "node:crypto";
import * as http from "node:http";
import * as https from "node:https";
import type { Socket } from "node:net";
import { clientFrame, CloseCode, FrameReader, Opcode, payloadByte, payloadOf, serverFrame, type Frame } from "./frames.js";
import { surrender, type Surrendered } from "./surrender.js";
import { FrameWriter } from "./writer.js";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** How long a close handshake may take before the socket is dropped. */
const CLOSE_TIMEOUT_MS = 5_000;

/** What a daemon socket reports (each of `refused` and `ended` at most once, and only one of them). */
export interface DaemonSocketEvents {
  open(): void;
  /** A text message, and its frame's bytes as the daemon sent them (null when it came in fragments). */
  text(text: string, raw: Buffer[] | null): void;
  /** A binary message as server-frame bytes (the daemon's own unless it came in fragments), with its payload's first byte and the big-endian u32 after it (-1 when shorter). */
  binary(raw: Buffer[], op: number, stream: number): void;
  /** The handshake got an HTTP answer other than 101. */
  refused(status: number): void;
  /** The connection ended: the close frame's code and reason, or 1006 and what broke it. */
  ended(code: number, reason: string, error: Error | null): void;
}

/**
 * A WebSocket client connection to a daemon, written for forwarding: messages come out with
 * their frame bytes, so the session hands a daemon's frames to its client without decoding or
 * re-encoding them. Sends are whole frames, masked with a fresh key each (RFC 6455 §5.3),
 * written once per tick (FrameWriter).
 * Answers pings; a close frame is answered and ends the connection.
 */
export class DaemonSocket {
  private socket: Socket | null = null;
  private writer: FrameWriter | null = null;
  private readonly request: http.ClientRequest;
  private readonly reader: FrameReader;
  private fragments: { opcode: number; parts: Buffer[]; bytes: number } | null = null;
  private closeSent = false;
  private done = false;
  private headUnread = false;

  constructor(
    url: string,
    headers: Record<string, string>,
    private readonly maxPayload: number,
    handshakeTimeoutMs: number,
    private readonly events: DaemonSocketEvents,
  ) {
    const u = new URL(url);
    if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new Error(`not a ws:// or wss:// URL: ${url}`);
    const key = randomBytes(16).toString("base64");
    const expected = createHash("sha1").update(key + GUID).digest("base64");
    this.reader = new FrameReader(maxPayload, (f) => this.onFrame(f));
    const request = (u.protocol === "wss:" ? https : http).request({
      host: u.hostname.replace(/^\[|\]$/g, ""),
      port: u.port || (u.protocol === "wss:" ? 443 : 80),
      path: `${u.pathname}${u.search}`,
      headers: { ...headers, Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": key },
    });
    this.request = request;
    const timer = setTimeout(() => request.destroy(new Error(`opening handshake has timed out after ${handshakeTimeoutMs} ms`)), handshakeTimeoutMs);
    request.on("response", (res) => {
      clearTimeout(timer);
      res.resume();
      request.destroy();
      if (this.finish()) events.refused(res.statusCode ?? 0);
    });
    request.on("error", (err) => {
      clearTimeout(timer);
      this.end(1006, "", err);
    });
    request.on("upgrade", (res, socket, head) => {
      clearTimeout(timer);
      if (this.done) return void socket.destroy();
      if (res.headers["sec-websocket-accept"] !== expected) {
        socket.destroy();
        return this.end(1006, "", new Error("invalid Sec-WebSocket-Accept header"));
      }
      if (res.headers["sec-websocket-extensions"] !== undefined) {
        socket.destroy();
        return this.end(1006, "", new Error("the server answered with an extension none was asked for"));
      }
      this.socket = socket;
      this.writer = new FrameWriter(socket);
      socket.setNoDelay(true);
      socket.on("error", (err) => this.end(1006, "", err));
      socket.on("close", () => this.end(1006, "", null));
      socket.on("data", (chunk: Buffer) => this.read(chunk));
      // Bytes that came with the handshake's answer are read after `open`, and the connection is not quiet until they are.
      this.headUnread = head.length > 0;
      events.open();
      this.headUnread = false;
      if (head.length > 0 && !this.done) this.read(head);
    });
    request.end();
  }

  get isOpen(): boolean {
    return this.socket !== null && !this.done && !this.closeSent;
  }

  /** Sends one message (text as text); `written` runs once the socket has written it (or never, if it breaks first). */
  send(data: string | Uint8Array, written?: () => void): void {
    if (!this.isOpen) return;
    const payload = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.writer!.write(clientFrame(typeof data === "string" ? Opcode.Text : Opcode.Binary, payload), written);
  }

  /** Sends whole client frames' bytes as they are (a client's, re-masked); `written` as for send. */
  sendFrame(parts: readonly Buffer[], written?: () => void): void {
    if (this.isOpen) this.writer!.write(parts, written);
  }

  pause(): void {
    this.socket?.pause();
  }

  resume(): void {
    this.socket?.resume();
  }

  /** Starts the closing handshake; drops the socket if the daemon does not finish it. */
  close(code: number, reason: string): void {
    if (!this.socket) return this.terminate();
    if (this.done || this.closeSent) return;
    this.sendClose(code, reason);
    setTimeout(() => this.socket?.destroy(), CLOSE_TIMEOUT_MS).unref();
  }

  /** Open, between two messages, nothing half-read or unwritten: the connection could change hands. */
  get quiet(): boolean {
    return this.isOpen && !this.headUnread && !this.fragments && this.reader.held === 0 && this.writer!.idle;
  }

  /** Gives the socket up (see `surrender`) once `quiet`; this object is done with and reports nothing more. */
  surrender(): Surrendered {
    this.done = true;
    this.reader.stop();
    return surrender(this.socket!);
  }

  /** Drops the connection at once. */
  terminate(): void {
    if (this.socket) this.socket.destroy();
    else this.request.destroy();
  }

  private read(chunk: Buffer): void {
    const problem = this.reader.push(chunk);
    if (!problem) return;
    this.sendClose(problem.code, "");
    this.socket?.destroy();
    this.end(CloseCode.Abnormal, "", new Error(`the daemon sent ${problem.message}`));
  }

  private onFrame(f: Frame): void {
    if (this.done) return;
    switch (f.opcode) {
      case Opcode.Text:
      case Opcode.Binary:
        if (this.fragments) return this.violation("a new message before the last one's fragments ended");
        if (!f.fin) {
          this.fragments = { opcode: f.opcode, parts: [payloadOf(f)], bytes: f.payloadLength };
          return;
        }
        return this.message(f.opcode, f.raw, f);
      case Opcode.Continuation: {
        const m = this.fragments;
        if (!m) return this.violation("a continuation frame with no message to continue");
        m.bytes += f.payloadLength;
        if (m.bytes > this.maxPayload) return this.violation(`a message over the ${this.maxPayload}-byte limit`);
        m.parts.push(payloadOf(f));
        if (!f.fin) return;
        this.fragments = null;
        const payload = Buffer.concat(m.parts, m.bytes);
        const raw = serverFrame(m.opcode, payload);
        return this.message(m.opcode, raw, { fin: true, opcode: m.opcode, raw, headerLength: raw[0]!.length, payloadLength: payload.length, key: 0 }, false);
      }
      case Opcode.Ping:
        if (!this.closeSent) this.writer!.write(clientFrame(Opcode.Pong, payloadOf(f)));
        return;
      case Opcode.Pong:
        return;
      case Opcode.Close: {
        const payload = payloadOf(f);
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        const reason = payload.length > 2 ? payload.subarray(2).toString("utf8") : "";
        if (!this.closeSent) this.sendClose(code === 1005 ? 1000 : code, "");
        this.socket!.end();
        this.reader.stop();
        return this.end(code, reason, null);
      }
    }
  }

  private message(opcode: number, raw: Buffer[], f: Frame, asSent = true): void {
    if (opcode === Opcode.Text) return this.events.text(payloadOf(f).toString("utf8"), asSent ? raw : null);
    const n = f.payloadLength;
    const stream = n >= 5 ? ((payloadByte(f, 1) << 24) | (payloadByte(f, 2) << 16) | (payloadByte(f, 3) << 8) | payloadByte(f, 4)) >>> 0 : -1;
    this.events.binary(raw, n >= 1 ? payloadByte(f, 0) : -1, stream);
  }

  private violation(what: string): void {
    this.reader.stop();
    this.sendClose(1002, "");
    this.socket?.destroy();
    this.end(1006, "", new Error(`the daemon sent ${what}`));
  }

  private sendClose(code: number, reason: string): void {
    if (this.closeSent || !this.socket || this.socket.destroyed) return;
    this.closeSent = true;
    const r = Buffer.from(reason.slice(0, 120), "utf8");
    const payload = Buffer.allocUnsafe(2 + r.length);
    payload.writeUInt16BE(code, 0);
    r.copy(payload, 2);
    // Whatever is batched goes first, then this, at once: the socket may be ended or dropped next.
    this.writer!.write(clientFrame(Opcode.Close, payload));
    this.writer!.flush();
  }

  /** True the first time: the one ending is reported. */
  private finish(): boolean {
    if (this.done) return false;
    this.done = true;
    this.reader.stop();
    return true;
  }

  private end(code: number, reason: string, error: Error | null): void {
    if (this.finish()) this.events.ended(code, reason, error);
  }
}
