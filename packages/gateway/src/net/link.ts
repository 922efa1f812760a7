import type { WebSocket } from "ws";
import { ByteBudget, MARKS } from "./budget.js";

/**
 * One WebSocket with its bytes counted (see ByteBudget) and its reading paused while anything
 * holds it: a session holds its client while an upstream it feeds is congested, and holds its
 * upstreams while the client is.
 */
export class Link {
  readonly budget: ByteBudget;
  private unsent = 0;
  private closed = false;
  private holds = 0;
  private reading = true;
  private corked = false;

  constructor(readonly ws: WebSocket, gateway: ByteBudget) {
    this.budget = new ByteBudget(MARKS.socket.high, MARKS.socket.low, gateway);
    ws.once("close", () => this.release());
  }

  /** Sends (text as a text message, bytes as a binary one), counting the bytes until the socket has written them. */
  send(data: string | Uint8Array): void {
    if (this.closed) return;
    this.batch();
    const n = typeof data === "string" ? data.length : data.byteLength;
    this.unsent += n;
    this.budget.add(n);
    this.ws.send(data, { binary: typeof data !== "string" }, () => {
      if (this.closed) return;
      this.unsent -= n;
      this.budget.sub(n);
    });
  }

  /**
   * Holds writes back until the event loop has handled every socket that was ready to read, then
   * lets them go in one system call: what the reads of one loop turn brought (an answer, stream
   * ENDs and an exit notification; several chunks of a stream) leaves in one write and wakes the
   * peer once. (`_socket` is ws's own net.Socket.)
   */
  private batch(): void {
    if (this.corked) return;
    const socket = (this.ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    if (!socket) return;
    this.corked = true;
    socket.cork();
    setImmediate(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  /** Null while the peer keeps up; else resolves once it has caught up. */
  congestion(): Promise<void> | null {
    return this.budget.congested() ? this.budget.drained() : null;
  }

  /** Stops reading this socket until `until` settles. */
  hold(until: Promise<unknown>): void {
    this.holds++;
    this.update();
    void until.finally(() => {
      this.holds--;
      this.update();
    });
  }

  private update(): void {
    if (this.closed) return;
    const read = this.holds === 0;
    if (read === this.reading) return;
    this.reading = read;
    if (read) this.ws.resume();
    else this.ws.pause();
  }

  /** The socket is gone: what it never wrote no longer counts. */
  private release(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.sub(this.unsent);
    this.unsent = 0;
  }
}
