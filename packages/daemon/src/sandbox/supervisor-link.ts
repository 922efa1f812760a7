import type { ChildProcess } from "node:child_process";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { explainResult, type MethodName } from "@sbx/protocol";
import { ChannelOp, FrameReader, MAX_CHANNEL_FRAME, channelHeader, encodeChannelFrame, encodeCreditFrame, encodeMessage, type ChannelFrame } from "../channel/framing.js";
import { SupervisorMessage, type SupervisorErrorCode } from "../channel/messages.js";
import type { Endpoint, Relay } from "../streams/relay.js";
import { StreamBudget } from "../streams/budget.js";
import type { Logger } from "../util/log.js";

const checkMessage = TypeCompiler.Compile(SupervisorMessage);

/** A call the supervisor refused or failed. */
export class SupervisorError extends Error {
  constructor(readonly code: SupervisorErrorCode | "Unavailable", message: string, readonly errno?: string) {
    super(message);
  }
}

export type ExitHandler = (pid: number, code: number | null, signal: string | null) => void;

interface Pending {
  method: MethodName | typeof PING;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  since: number;
}

/**
 * The liveness check: any reply proves the supervisor is reading and answering (one that
 * does not know the method answers with an error, which is still an answer).
 */
const PING = "supervisor.ping";
/**
 * A call may legitimately take long (a recursive remove, a whole upload), but the supervisor
 * may not stop answering: once a call has waited `stallMs` (config `stallTimeout`), the
 * supervisor must answer a ping within min(10 s, stallMs).
 */
export const DEFAULT_STALL_MS = 30_000;
/** Bytes queued toward a supervisor's stdin before the clients feeding it are made to wait. */
const STDIN_HIGH = 4 << 20;

/**
 * The daemon's handle on one running bwrap + supervisor. Everything read from the
 * supervisor is bounded and validated: it runs beside untrusted code and may be subverted.
 */
export class SupervisorLink {
  private readonly reader = new FrameReader(MAX_CHANNEL_FRAME);
  private readonly pending = new Map<number, Pending>();
  /** Relays keyed by the sandbox-side stream id, with the direction the bytes flow. */
  private readonly relays = new Map<number, { relay: Relay; outbound: boolean }>();
  private nextCall = 1;
  private nextStream = 1;
  private stopped: string | null = null;
  private readyWaiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private stderrTail = "";
  private watchdog: NodeJS.Timeout | null = null;
  private inputHolds = 0;
  private pinging = false;
  onExit: ExitHandler = () => {};
  /** Called once when the supervisor must be considered hostile or dead. */
  onFatal: (reason: string) => void = () => {};
  /** What this sandbox's streams toward the daemon may hold in it together (config streamBytesPerSandbox). */
  readonly streams: StreamBudget;

  constructor(
    readonly proc: ChildProcess,
    private readonly log: Logger,
    private readonly label: string,
    private readonly stallMs = DEFAULT_STALL_MS,
    streamBytes?: number,
  ) {
    this.streams = new StreamBudget(streamBytes);
    proc.stdout!.on("data", (data: Buffer) => this.onData(data));
    proc.stderr!.on("data", (data: Buffer) => {
      this.stderrTail = (this.stderrTail + data.toString("utf8")).slice(-4096);
    });
    proc.stdin!.on("error", () => {});
  }

  /** Resolves when the supervisor says it is ready; rejects with bwrap's own words if it dies first. */
  ready(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sandbox did not start within ${timeoutMs} ms: ${this.stderr()}`)), timeoutMs);
      this.readyWaiter = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }

  stderr(): string {
    return this.stderrTail.trim().split("\n").slice(-8).join("; ") || "no output";
  }

  call(method: MethodName, params: Record<string, unknown>): Promise<unknown> {
    return this.send(method, params);
  }

  private send(method: MethodName | typeof PING, params: Record<string, unknown>): Promise<unknown> {
    if (this.stopped) return Promise.reject(new SupervisorError("Unavailable", `sandbox ${this.label} has stopped (${this.stopped})`));
    const id = this.nextCall++;
    const frame = encodeMessage({ t: "call", id, m: method, p: params });
    // Checked here, on the sending side: a frame the supervisor must refuse would wedge its reader.
    if (frame.length - 4 > MAX_CHANNEL_FRAME) {
      return Promise.reject(new SupervisorError("InvalidParams", `the ${method} call is ${Math.ceil(frame.length / 1048576)} MiB, more than the ${MAX_CHANNEL_FRAME / 1048576} MiB a call to a sandbox may be`));
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { method, resolve, reject, since: Date.now() });
      this.write(frame);
      this.armWatchdog();
    });
  }

  /**
   * While calls are pending, checks every `stallMs` that none has waited that long unanswered;
   * if one has, the supervisor must answer a ping in time or the sandbox is ended with that
   * reason (a stopped or wedged supervisor never hangs a call).
   */
  private armWatchdog(): void {
    if (this.watchdog || this.stopped) return;
    this.watchdog = setTimeout(() => {
      this.watchdog = null;
      if (this.stopped || this.pending.size === 0) return;
      const oldest = Math.min(...[...this.pending.values()].map((p) => p.since));
      if (Date.now() - oldest >= this.stallMs && !this.pinging) this.ping();
      this.armWatchdog();
    }, this.stallMs);
    this.watchdog.unref();
  }

  private ping(): void {
    this.pinging = true;
    const limit = Math.min(10_000, this.stallMs);
    const timer = setTimeout(() => {
      this.log.warn(`sandbox ${this.label}: its supervisor did not answer a liveness check within ${limit / 1000} s; ending the sandbox`);
      this.onFatal(`the sandbox's supervisor stopped answering (no reply to a liveness check within ${limit / 1000} s while a call waited)`);
    }, limit);
    timer.unref();
    const answered = () => {
      clearTimeout(timer);
      this.pinging = false;
    };
    this.send(PING, {}).then(answered, answered);
  }

  allocStream(): number {
    return this.nextStream++;
  }

  /** An endpoint that sends frames to the supervisor for stream `sid`. */
  endpoint(sid: number): Endpoint {
    return {
      data: (chunk) => this.writeData(sid, chunk),
      end: () => this.write(encodeChannelFrame(ChannelOp.End, sid)),
      credit: (n) => this.write(encodeCreditFrame(sid, n)),
      abort: (reason) => this.write(encodeChannelFrame(ChannelOp.Abort, sid, Buffer.from(reason.slice(0, 1024)))),
      congestion: () => this.stdinCongestion(),
    };
  }

  /** A supervisor that does not read its stdin makes its writers wait, not the daemon's memory grow. */
  private stdinCongestion(): Promise<void> | null {
    const stdin = this.proc.stdin!;
    if (this.stopped || stdin.writableLength <= STDIN_HIGH) return null;
    return new Promise((resolve) => {
      const done = () => {
        stdin.off("drain", done);
        stdin.off("close", done);
        resolve();
      };
      stdin.on("drain", done);
      stdin.on("close", done);
    });
  }

  /** Stops reading the supervisor until `until` settles: a client its bytes go to is not keeping up. */
  private holdInput(until: Promise<void>): void {
    if (this.inputHolds++ === 0) this.proc.stdout!.pause();
    void until.finally(() => {
      if (--this.inputHolds === 0 && !this.stopped) this.proc.stdout!.resume();
    });
  }

  addRelay(sid: number, relay: Relay, outbound: boolean): void {
    // What the sandbox sends is held against its budget: a window of STREAM_WINDOW per stream would not be.
    if (outbound && !relay.granted) throw new Error(`stream ${sid} from sandbox ${this.label} has no window from its stream budget`);
    this.relays.set(sid, { relay, outbound });
  }

  removeRelay(sid: number): void {
    this.relays.delete(sid);
  }

  /** The sandbox is gone: fail every call and stream that depended on it. */
  stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = reason;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.readyWaiter?.reject(new Error(`sandbox exited before it was ready: ${this.stderr()}`));
    for (const p of this.pending.values()) p.reject(new SupervisorError("Unavailable", `sandbox ${this.label} stopped (${reason})`));
    this.pending.clear();
    for (const { relay } of [...this.relays.values()]) relay.abort(`sandbox stopped (${reason})`);
    this.relays.clear();
  }

  private write(frame: Buffer): void {
    if (!this.stopped) this.proc.stdin!.write(frame);
  }

  /** Header and payload as two writes in one writev: no copy of the payload. */
  private writeData(sid: number, chunk: Uint8Array): void {
    if (this.stopped) return;
    const stdin = this.proc.stdin!;
    stdin.cork();
    stdin.write(channelHeader(ChannelOp.Data, sid, chunk.byteLength));
    stdin.write(chunk);
    process.nextTick(() => stdin.uncork());
  }

  private violation(reason: string): void {
    this.log.warn(`sandbox ${this.label}: supervisor violated the protocol (${reason}); killing the sandbox`);
    this.onFatal(`supervisor protocol violation: ${reason}`);
  }

  private onData(data: Buffer): void {
    if (this.stopped) return;
    let frames: ChannelFrame[];
    try {
      frames = this.reader.push(data);
    } catch (err) {
      return this.violation((err as Error).message);
    }
    for (const frame of frames) {
      if (this.stopped) return;
      if (frame.op === ChannelOp.Msg) this.onMessage(frame.payload);
      else this.onStreamFrame(frame);
    }
  }

  private onStreamFrame(frame: ChannelFrame): void {
    const entry = this.relays.get(frame.id);
    if (!entry) return; // a stream that already ended; late frames are dropped
    const { relay, outbound } = entry;
    switch (frame.op) {
      case ChannelOp.Data: {
        if (!outbound) return this.violation(`DATA on inbound stream ${frame.id}`);
        if (frame.payload.length > 256 * 1024) return this.violation("oversized DATA frame");
        relay.data(frame.payload, frame.framed);
        const behind = relay.dst.congestion();
        if (behind) this.holdInput(behind);
        return;
      }
      case ChannelOp.End:
        if (!outbound) return this.violation(`END on inbound stream ${frame.id}`);
        return relay.end();
      case ChannelOp.Credit:
        if (outbound || frame.payload.length !== 4) return this.violation(`bad CREDIT on stream ${frame.id}`);
        return relay.credit(frame.payload.readUInt32BE(0));
      case ChannelOp.Abort: {
        const reason = frame.payload.subarray(0, 1024).toString("utf8");
        return outbound ? relay.abortFromSrc(reason) : relay.abortFromDst(reason);
      }
    }
  }

  private onMessage(payload: Buffer): void {
    let msg: unknown;
    try {
      msg = JSON.parse(payload.toString("utf8"));
    } catch {
      return this.violation("malformed JSON message");
    }
    if (!checkMessage.Check(msg)) return this.violation("message of unknown shape");
    const m = msg as SupervisorMessage;
    if (m.t === "ready") {
      this.readyWaiter?.resolve();
      this.readyWaiter = null;
    } else if (m.t === "exit") {
      this.onExit(m.pid, m.code, m.signal);
    } else {
      const pending = this.pending.get(m.id);
      if (!pending) return this.violation(`reply to unknown call ${m.id}`);
      this.pending.delete(m.id);
      if (pending.method === PING) return pending.resolve(null);
      if (m.ok) {
        const problem = explainResult(pending.method, m.v);
        if (problem) {
          pending.reject(new SupervisorError("InternalError", `sandbox returned a malformed result for ${pending.method}`));
          return this.violation(`${pending.method}: ${problem}`);
        }
        pending.resolve(m.v);
      } else pending.reject(new SupervisorError(m.code, m.message, m.errno));
    }
  }
}
