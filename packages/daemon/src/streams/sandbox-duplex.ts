/**
 * A byte pipe between the daemon itself and something inside a sandbox, as a Node Duplex:
 * `input` carries what the daemon writes into the sandbox, `output` what comes back. The REPLs'
 * private control pipes and the tunnels to ports inside (exposeHttp, fetch) are both this.
 * Flow control is the channel's: the daemon writes only within the window the supervisor
 * grants, and grants the supervisor credit only as the daemon's reader consumes.
 */
import { Duplex } from "node:stream";
import { MAX_CHUNK, STREAM_WINDOW } from "@sbx/protocol";
import { Relay, type Endpoint } from "./relay.js";
import type { StreamGrant } from "./budget.js";
import type { SupervisorLink } from "../sandbox/supervisor-link.js";

export class SandboxDuplex extends Duplex {
  /** The sandbox-side stream ids to name in the supervisor call that opens the pipe. */
  readonly input: number;
  readonly output: number;
  private readonly toSandbox: Relay;
  private readonly fromSandbox: Relay;
  /** Bytes written into the sandbox that it has not yet granted credit back for. */
  private inFlight = 0;
  private wake: (() => void) | null = null;
  /** Bytes pushed to our reader that the supervisor has not been credited for. */
  private uncredited = 0;
  private ended = false;
  /** Writes wait for this: a pipe whose far end the supervisor opens only when its call succeeds. */
  private opened: Promise<void> = Promise.resolve();
  /** Why the pipe could not open (the sandbox's stream budget is spent): it fails soon after, and openWith makes no call. */
  readonly refusal: Error | null = null;

  /** `meter`, when given, hears of every byte each way (a tunnel's traffic counts as the sandbox's). */
  constructor(
    link: SupervisorLink,
    private readonly meter?: { toSandbox(n: number): void; fromSandbox(n: number): void },
  ) {
    super({ allowHalfOpen: true });
    this.input = link.allocStream();
    this.output = link.allocStream();
    const writer: Endpoint = {
      data: () => {},
      end: () => {},
      credit: (n) => {
        this.inFlight -= n;
        const wake = this.wake;
        this.wake = null;
        wake?.();
      },
      abort: (reason) => this.fail(reason),
      congestion: () => null,
    };
    const reader: Endpoint = {
      data: (chunk) => {
        this.meter?.fromSandbox(chunk.byteLength);
        const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (this.push(Buffer.from(buf))) this.fromSandbox.credit(chunk.byteLength);
        else this.uncredited += chunk.byteLength;
      },
      end: () => {
        this.ended = true;
        this.push(null);
      },
      credit: () => {},
      abort: (reason) => this.fail(reason),
      congestion: () => null,
    };
    const violation = (reason: string) => this.fail(reason);
    let grant: StreamGrant | undefined;
    try {
      grant = link.streams.open();
    } catch (err) {
      this.refusal = err as Error;
    }
    this.toSandbox = new Relay(writer, link.endpoint(this.input), violation, () => link.removeRelay(this.input));
    this.fromSandbox = new Relay(link.endpoint(this.output), reader, violation, () => link.removeRelay(this.output), grant);
    if (this.refusal) {
      // After the caller (an http Agent, say) has had its turn to listen for the error.
      const refusal = this.refusal;
      setImmediate(() => this.destroy(refusal));
      return;
    }
    link.addRelay(this.input, this.toSandbox, false);
    link.addRelay(this.output, this.fromSandbox, true);
  }

  /** Holds writes until `call()` (the supervisor call that opens the far end) succeeds; its failure destroys the pipe. Not called for a refused pipe. */
  openWith(call: () => Promise<unknown>): void {
    if (this.refusal) return;
    this.opened = call().then(
      () => {},
      (err: Error) => {
        this.destroy(err);
        throw err;
      },
    );
    this.opened.catch(() => {});
  }

  override _read(): void {
    if (this.uncredited > 0) {
      const n = this.uncredited;
      this.uncredited = 0;
      this.fromSandbox.credit(n);
    }
  }

  override async _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): Promise<void> {
    try {
      await this.opened;
      for (let off = 0; off < chunk.length; off += MAX_CHUNK) {
        const piece = chunk.subarray(off, off + MAX_CHUNK);
        while (this.inFlight + piece.length > STREAM_WINDOW) {
          if (this.toSandbox.isClosed) throw new Error("the pipe into the sandbox is closed");
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
        if (this.toSandbox.isClosed) throw new Error("the pipe into the sandbox is closed");
        this.inFlight += piece.length;
        this.meter?.toSandbox(piece.length);
        this.toSandbox.data(piece);
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _final(done: (err?: Error | null) => void): void {
    this.opened.then(
      () => {
        this.toSandbox.end();
        done();
      },
      (err: Error) => done(err),
    );
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    const reason = err?.message ?? "closed by the daemon";
    this.toSandbox.abort(reason);
    if (!this.ended) this.fromSandbox.abort(reason);
    const wake = this.wake;
    this.wake = null;
    wake?.();
    done(err);
  }

  /** The other side gave up (or the sandbox ended). */
  private fail(reason: string): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
    this.destroy(new Error(reason));
  }
}
