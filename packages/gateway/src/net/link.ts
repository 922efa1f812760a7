import type { Socket } from "node:net";
import type { WebSocket } from "ws";
import { ByteBudget, MARKS } from "./budget.js";
import type { DaemonSocket } from "./daemon-socket.js";

/** What a Link drives: a client's `ws` socket or a DaemonSocket. */
export interface Channel {
  /** The TCP socket while open (writes are corked on it). */
  tcp(): Socket | null;
  /** Sends one message (text as a text message); `written` runs once the socket has written it. */
  send(data: string | Uint8Array, written: () => void): void;
  pause(): void;
  resume(): void;
}

/** A client's connection, as `ws` holds it. (`_socket` is ws's own net.Socket.) */
export function wsChannel(ws: WebSocket): Channel {
  return {
    tcp: () => (ws as unknown as { _socket?: Socket })._socket ?? null,
    send: (data, written) => ws.send(data, { binary: typeof data !== "string" }, () => written()),
    pause: () => ws.pause(),
    resume: () => ws.resume(),
  };
}

export function daemonChannel(socket: DaemonSocket): Channel {
  return {
    tcp: () => socket.tcp,
    send: (data, written) => socket.send(data, written),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
  };
}

/**
 * One connection with its bytes counted (see ByteBudget) and its reading paused while anything
 * holds it: a session holds its client while an upstream it feeds is congested, and holds its
 * upstreams while the client is. Its owner calls `release()` once the connection is closed.
 */
export class Link {
  readonly budget: ByteBudget;
  private unsent = 0;
  private closed = false;
  private holds = 0;
  private reading = true;
  private corked = false;

  constructor(
    private readonly channel: Channel,
    gateway: ByteBudget,
  ) {
    this.budget = new ByteBudget(MARKS.socket.high, MARKS.socket.low, gateway);
  }

  /** Sends (text as a text message, bytes as a binary one), counting the bytes until the socket has written them. */
  send(data: string | Uint8Array): void {
    if (this.closed) return;
    this.batch();
    const n = typeof data === "string" ? data.length : data.byteLength;
    this.count(n);
    this.channel.send(data, () => this.written(n));
  }

  /**
   * Writes whole frames' bytes as they are (a daemon's frames, passed to its client), counted
   * like `send`. Only for a socket whose peer takes server frames, while it is open.
   */
  sendFrame(parts: readonly Buffer[]): void {
    if (this.closed) return;
    const tcp = this.channel.tcp();
    if (!tcp) return;
    this.batch();
    let n = 0;
    for (const p of parts) n += p.length;
    this.count(n);
    for (let i = 0; i < parts.length - 1; i++) tcp.write(parts[i]!);
    tcp.write(parts[parts.length - 1]!, () => this.written(n));
  }

  private count(n: number): void {
    this.unsent += n;
    this.budget.add(n);
  }

  private written(n: number): void {
    if (this.closed) return;
    this.unsent -= n;
    this.budget.sub(n);
  }

  /**
   * Holds writes back until the event loop has handled every socket that was ready to read, then
   * lets them go in one system call: what the reads of one loop turn brought (an answer, stream
   * ENDs and an exit notification; several chunks of a stream) leaves in one write and wakes the
   * peer once.
   */
  private batch(): void {
    if (this.corked) return;
    const socket = this.channel.tcp();
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
    if (read) this.channel.resume();
    else this.channel.pause();
  }

  /** The connection is gone: what it never wrote no longer counts. */
  release(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.sub(this.unsent);
    this.unsent = 0;
  }
}

