import type { Socket } from "node:net";

/** Below this many bytes a batch is joined into one buffer (one plain write); above it, written as a vector. */
const JOIN_BELOW = 16 * 1024;

/**
 * A socket's writes gathered until the code now running is done (one tick), then sent in one
 * system call: the frames one socket read brought (an answer; stream ENDs and an exit
 * notification; several chunks of a stream) leave together and wake the peer once, and nothing
 * waits for a later turn of the event loop.
 */
export class FrameWriter {
  private parts: Buffer[] = [];
  private bytes = 0;
  private callbacks: Array<() => void> = [];
  private scheduled = false;
  private readonly flushNow = () => this.flush();

  constructor(private readonly socket: Socket) {}

  /** Queues frame bytes; `written` runs once the socket has written them (never if it breaks first). */
  write(parts: Buffer | readonly Buffer[], written?: () => void): void {
    if (Buffer.isBuffer(parts)) {
      this.parts.push(parts);
      this.bytes += parts.length;
    } else {
      for (const p of parts) {
        this.parts.push(p);
        this.bytes += p.length;
      }
    }
    if (written) this.callbacks.push(written);
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.flushNow);
    }
  }

  /** Nothing queued here or in the socket: every byte has reached the kernel. */
  get idle(): boolean {
    return this.parts.length === 0 && this.socket.writableLength === 0;
  }

  /** Writes what is queued now (before ending the socket). */
  flush(): void {
    this.scheduled = false;
    const { parts, bytes, callbacks } = this;
    if (parts.length === 0) return;
    this.parts = [];
    this.bytes = 0;
    this.callbacks = [];
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) return;
    const done = callbacks.length === 0 ? undefined : callbacks.length === 1 ? callbacks[0] : () => callbacks.forEach((c) => c());
    if (parts.length === 1) return void socket.write(parts[0]!, done);
    if (bytes < JOIN_BELOW) return void socket.write(Buffer.concat(parts, bytes), done);
    socket.cork();
    for (let i = 0; i < parts.length - 1; i++) socket.write(parts[i]!);
    socket.write(parts[parts.length - 1]!, done);
    socket.uncork();
  }
}
