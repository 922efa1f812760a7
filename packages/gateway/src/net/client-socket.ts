import { isUtf8 } from "node:buffer";
import type { Socket } from "node:net";
import { CloseCode, FrameReader, Opcode, payloadOf, serverFrame, type Frame, type Violation } from "./frames.js";
import { surrender, type Surrendered } from "./surrender.js";
import { FrameWriter } from "./writer.js";

/** How long a close handshake may take before the socket is dropped. */
const CLOSE_TIMEOUT_MS = 5_000;
/** Fragments one message may come in (ws's default for a server, which the daemon is). */
export const MAX_FRAGMENTS = 16 * 1024;
/** Messages handed on per turn of the event loop before the others (every connection) get theirs. */
const MESSAGES_PER_TURN = 32;

/** What a client socket reports. */
export interface ClientSocketEvents {
  /** A text message's payload (valid UTF-8). */
  text(payload: Buffer): void;
  /**
   * A binary message as the client's own frames, masked: one when it came whole, else its
   * fragments in order (pass each on with `remask`, which changes its bytes, all in the same turn,
   * so nothing comes between them).
   */
  binary(frames: Frame[]): void;
  /** The connection is gone: the client's close code (1005 none given, 1006 none received) and reason. */
  closed(code: number, reason: string): void;
}

/** Close codes a peer may send (RFC 6455 §7.4; ws's list): 1004–1006 and 1015 are never sent. */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/**
 * The server side of a client's WebSocket connection, after the gateway's own handshake
 * (upgrade.ts), written for forwarding: a binary message comes out as its frames' bytes (only
 * their headers read), a text message as its unmasked payload; what goes to the client is frames'
 * bytes, the daemons' own passed as they are. Per RFC 6455: a client's frames must be masked,
 * control frames answered (ping with pong, close with close, then the server ends the TCP
 * connection first), a text message's fragments joined, a message held to `maxMessage` bytes; any violation closes the
 * connection with its code (1002 framing, 1007 invalid UTF-8, 1009 too big). No extension is
 * negotiated, so frames with reserved bits are violations too.
 */
export class ClientSocket {
  private readonly reader: FrameReader;
  private readonly writer: FrameWriter;
  private events: ClientSocketEvents | null = null;
  private fragments: { opcode: number; frames: Frame[]; bytes: number } | null = null;
  private closeSent = false;
  private closeReceived: { code: number; reason: string } | null = null;
  private ended = false;
  private held = false;
  private yielding = false;
  private delivered = 0;
  private draining = false;

  constructor(
    private readonly socket: Socket,
    private readonly head: Buffer,
    private readonly maxMessage: number,
  ) {
    this.reader = new FrameReader(maxMessage, (f) => this.onFrame(f), "client");
    this.writer = new FrameWriter(socket);
  }

  /** Starts reading, reporting to `events`. */
  start(events: ClientSocketEvents): void {
    this.events = events;
    const socket = this.socket;
    socket.setNoDelay(true);
    socket.on("error", () => {});
    socket.on("close", () => this.onClose());
    socket.on("data", (chunk: Buffer) => this.read(chunk));
    if (this.head.length > 0) this.read(this.head);
  }

  /** True until either side has started closing: messages may be sent. */
  get isOpen(): boolean {
    return !this.closeSent && !this.ended;
  }

  /** Sends one message (text as a text message); `written` runs once the socket has written it. */
  send(data: string | Uint8Array, written?: () => void): void {
    if (!this.isOpen) return;
    const text = typeof data === "string";
    const payload = text ? Buffer.from(data, "utf8") : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.writer.write(serverFrame(text ? Opcode.Text : Opcode.Binary, payload), written);
  }

  /** Sends whole server frames' bytes as they are (a daemon's, passed on). */
  sendFrame(parts: readonly Buffer[], written?: () => void): void {
    if (this.isOpen) this.writer.write(parts, written);
  }

  /** Stops handing on messages and reading the socket, until `resume()`. */
  pause(): void {
    this.held = true;
    this.reader.pause();
    this.socket.pause();
  }

  resume(): void {
    this.held = false;
    this.socket.resume();
    this.drain();
  }

  /**
   * Starts the closing handshake: nothing more is sent or handed on; the socket ends once the
   * client answers, or is dropped if it does not within a few seconds.
   */
  close(code: number, reason: string): void {
    if (this.ended || this.closeSent) return;
    this.sendClose(code, reason);
    if (this.closeReceived) this.endSocket();
    else setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS).unref();
  }

  /** Drops the connection at once. */
  terminate(): void {
    this.socket.destroy();
  }

  /** Between two messages with nothing held, half-read or unwritten: the connection could change hands. */
  get quiet(): boolean {
    return this.isOpen && !this.closeReceived && !this.held && !this.yielding && !this.fragments && this.reader.held === 0 && this.writer.idle;
  }

  /** Gives the socket up (see `surrender`) once `quiet`; this object is done with and reports nothing more. */
  surrender(): Surrendered {
    this.ended = true;
    this.reader.stop();
    return surrender(this.socket);
  }

  private read(chunk: Buffer): void {
    if (this.ended) return;
    this.delivered = 0;
    const problem = this.reader.push(chunk);
    if (problem) this.violation(problem);
  }

  /** Hands on what the reader holds, unless held or yielding this turn. */
  private drain(): void {
    if (this.held || this.yielding || this.draining || this.ended) return;
    this.draining = true;
    try {
      this.delivered = 0;
      const problem = this.reader.resume();
      if (problem) this.violation(problem);
    } finally {
      this.draining = false;
    }
  }

  private onFrame(f: Frame): void {
    if (this.closeReceived || this.ended) return;
    switch (f.opcode) {
      case Opcode.Text:
      case Opcode.Binary:
        if (this.fragments) return this.violation({ code: CloseCode.ProtocolError, message: "a new message before the last one's fragments ended" });
        if (!f.fin) {
          this.fragments = { opcode: f.opcode, frames: [f], bytes: f.payloadLength };
          return;
        }
        return this.message(f.opcode, [f]);
      case Opcode.Continuation: {
        const m = this.fragments;
        if (!m) return this.violation({ code: CloseCode.ProtocolError, message: "a continuation frame with no message to continue" });
        m.bytes += f.payloadLength;
        if (m.bytes > this.maxMessage) return this.violation({ code: CloseCode.TooBig, message: `a message over the ${this.maxMessage}-byte limit` });
        // Each fragment is held until the last: tiny ones would cost the gateway far more memory than their bytes.
        if (m.frames.length >= MAX_FRAGMENTS) return this.violation({ code: CloseCode.PolicyViolation, message: `a message in more than ${MAX_FRAGMENTS} fragments` });
        m.frames.push(f);
        if (!f.fin) return;
        this.fragments = null;
        return this.message(m.opcode, m.frames);
      }
      case Opcode.Ping:
        if (this.isOpen) this.writer.write(serverFrame(Opcode.Pong, payloadOf(f)));
        return;
      case Opcode.Pong:
        return;
      case Opcode.Close:
        return this.onCloseFrame(payloadOf(f));
    }
  }

  /** A whole message: its one frame, or its fragments. */
  private message(opcode: number, frames: Frame[]): void {
    // After its own close frame, the gateway takes no more calls (the client is told nothing more).
    if (this.closeSent) return;
    if (opcode === Opcode.Text) {
      const parts = frames.map(payloadOf);
      const payload = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      if (!isUtf8(payload)) return this.violation({ code: CloseCode.InvalidData, message: "a text message that is not valid UTF-8" });
      this.events!.text(payload);
    } else {
      this.events!.binary(frames);
    }
    // One connection's flood takes turns with everyone else's traffic.
    if (++this.delivered >= MESSAGES_PER_TURN && !this.ended) {
      this.yielding = true;
      this.reader.pause();
      setImmediate(() => {
        this.yielding = false;
        this.drain();
      });
    }
  }

  private onCloseFrame(payload: Buffer): void {
    if (payload.length === 1) return this.violation({ code: CloseCode.ProtocolError, message: "a close frame with a 1-byte payload" });
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : CloseCode.NoStatus;
    if (payload.length >= 2 && !isValidCloseCode(code)) return this.violation({ code: CloseCode.ProtocolError, message: `a close frame with the invalid code ${code}` });
    const reasonBytes = payload.subarray(2);
    if (!isUtf8(reasonBytes)) return this.violation({ code: CloseCode.InvalidData, message: "a close reason that is not valid UTF-8" });
    this.closeReceived = { code, reason: reasonBytes.toString("utf8") };
    this.reader.stop();
    // Echoes the client's code, as ws does; the server ends the TCP connection first (RFC 6455 §7.1.1).
    if (!this.closeSent) this.sendClose(code === CloseCode.NoStatus ? null : code, "");
    this.endSocket();
  }

  private violation(v: Violation): void {
    if (this.ended) return;
    this.reader.stop();
    this.fragments = null;
    this.sendClose(v.code, v.message);
    this.endSocket();
  }

  /** A close frame (empty when `code` is null); the reason is cut to fit a control frame. */
  private sendClose(code: number | null, reason: string): void {
    if (this.closeSent || this.socket.destroyed) return;
    this.closeSent = true;
    let payload = Buffer.alloc(0);
    if (code !== null) {
      const r = Buffer.from(reason, "utf8");
      let n = Math.min(r.length, 123);
      while (n > 0 && n < r.length && (r[n]! & 0xc0) === 0x80) n--; // not in the middle of a character
      payload = Buffer.allocUnsafe(2 + n);
      payload.writeUInt16BE(code, 0);
      r.copy(payload, 2, 0, n);
    }
    // Out at once, behind whatever is batched: the socket may be ended or dropped next.
    this.writer.write(serverFrame(Opcode.Close, payload));
    this.writer.flush();
  }

  private endSocket(): void {
    this.writer.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS).unref();
  }

  private onClose(): void {
    if (this.ended) return;
    this.ended = true;
    this.reader.stop();
    const c = this.closeReceived ?? { code: CloseCode.Abnormal, reason: "" };
    this.events?.closed(c.code, c.reason);
  }
}
