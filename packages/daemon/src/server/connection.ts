import type { WebSocket } from "ws";
import { JSONRPCErrorCode, type JSONRPCRequest, type JSONRPCServer } from "json-rpc-2.0";
import {
  FrameOp, METHODS, creditOf, decodeFrameParts, encodeAbort, encodeCredit, encodeFrame, explainParams, isMethod, jsonDepth,
  ErrorCodes, BIND_ERROR_CODE, bindingAfterCreate, bindingOnCall, bindingProblem, type Binding, type NotificationName, type NotificationParams,
} from "@sbx/protocol";
import type { Client } from "../sandbox/sandbox.js";
import type { SandboxManager } from "../sandbox/manager.js";
import { Relay, type Endpoint } from "../streams/relay.js";
import type { ByteBudget } from "@sbx/protocol";
import type { RateLimit } from "./backpressure.js";
import { callContext } from "../util/context.js";
import { DaemonError } from "../util/errors.js";
import type { Logger } from "../util/log.js";

export interface ConnectionLimits {
  maxInFlight: number;
  maxStreams: number;
  maxJsonDepth: number;
  /** Bytes of call messages in flight (received, not yet answered) before the daemon stops reading more. */
  maxInFlightBytes: number;
}


/** What a method handler gets beside its params: the caller and the streams prepared for it. */
export interface CallContext {
  conn: Connection;
  /** Sandbox-side stream id for each stream-naming param. */
  streams: Record<string, number>;
}

let nextConnectionId = 1;

/** One authenticated WebSocket client. */
export class Connection implements Client {
  readonly id = nextConnectionId++;
  closed = false;
  private inFlight = 0;
  private inFlightBytes = 0;
  private readonly streams = new Map<number, { relay: Relay; outbound: boolean }>();
  /** Bytes handed to the socket and not yet written out of the daemon. */
  private unsent = 0;
  private reading = true;
  /** Reasons (other than this connection's own send queue) not to read the client now. */
  private holds = 0;
  private waitingForDrain = false;

  constructor(
    private readonly ws: WebSocket,
    readonly owner: string,
    private readonly manager: SandboxManager,
    private readonly rpc: JSONRPCServer<CallContext>,
    private readonly limits: ConnectionLimits,
    private readonly log: Logger,
    private readonly out: ByteBudget,
    private readonly json: RateLimit,
    private readonly releaseQueue: () => void,
    /** The tenant's name, for logs and metrics. */
    readonly tenant: string,
    /** What the upgrade URL's `bind` promised: the one sandbox this connection may talk about. */
    private binding: Binding = { kind: "none" },
  ) {
    // A binary message as its fragments: the SDK sends a DATA frame's header and payload as two,
    // so that neither side copies the payload to join them (decodeFrameParts). Text comes whole.
    ws.binaryType = "fragments";
    ws.on("message", (data: Buffer | Buffer[], isBinary) => (isBinary ? this.onBinary(data as Buffer[]) : this.onText(data.toString("utf8"))));
    ws.on("close", () => this.onClose());
    ws.on("error", () => {});
  }

  notify<N extends NotificationName>(method: N, params: NotificationParams<N>): void {
    // Network events are a log the sandbox can make as long as it likes: dropped while the client is not reading.
    if (method === "sandbox.network" && this.out.congested()) return;
    this.sendJson({ jsonrpc: "2.0", method, params });
  }

  private sendJson(msg: unknown): void {
    this.send(JSON.stringify(msg));
  }

  private sendBinary(frame: Uint8Array): void {
    this.send(frame);
  }

  /** Every byte to the client goes through here, counted until the socket has written it. */
  private send(data: string | Uint8Array): void {
    if (this.closed) return;
    const n = typeof data === "string" ? data.length : data.byteLength;
    this.unsent += n;
    this.out.add(n);
    this.ws.send(data, () => {
      if (this.closed) return;
      this.unsent -= n;
      this.out.sub(n);
    });
    if (this.reading && this.out.congested()) this.updateReading();
  }

  /** Reads from the client only while nothing holds it back; resumes once the causes are gone. */
  private updateReading(): void {
    if (this.closed) return;
    const congested = this.out.congested() !== null;
    const read = !congested && this.holds === 0 && this.inFlightBytes <= this.limits.maxInFlightBytes;
    if (read !== this.reading) {
      this.reading = read;
      if (read) this.ws.resume();
      else this.ws.pause();
    }
    if (congested && !this.waitingForDrain) {
      this.waitingForDrain = true;
      void this.out.drained().then(() => {
        this.waitingForDrain = false;
        this.updateReading();
      });
    }
  }

  /** Stops reading the client until `until` settles (a sandbox's stdin is full, or a turn for other connections). */
  private hold(until: Promise<unknown>): void {
    this.holds++;
    this.updateReading();
    void until.finally(() => {
      this.holds--;
      this.updateReading();
    });
  }

  /** Null while the client keeps up; else resolves once its queues are under their low marks. */
  private congestion(): Promise<void> | null {
    return this.out.congested() ? this.out.drained() : null;
  }

  private endpoint(cid: number): Endpoint {
    return {
      data: (chunk, framed) => {
        this.manager.metrics.bytesOut.inc(chunk.byteLength);
        if (!framed) return this.sendBinary(encodeFrame(FrameOp.Data, cid, chunk));
        // The channel frame's op and id bytes become the WebSocket frame's header, rewritten in place.
        framed[0] = FrameOp.Data;
        framed.writeUInt32BE(cid >>> 0, 1);
        this.sendBinary(framed);
      },
      end: () => this.sendBinary(encodeFrame(FrameOp.End, cid)),
      credit: (n) => this.sendBinary(encodeCredit(cid, n)),
      abort: (reason) => this.sendBinary(encodeAbort(cid, reason)),
      congestion: () => this.congestion(),
    };
  }

  private violation(reason: string): void {
    this.log.warn(`connection ${this.id}: ${reason}; closing it`);
    this.ws.close(1008, reason.slice(0, 120));
  }

  private onText(text: string): void {
    if (jsonDepth(text) > this.limits.maxJsonDepth) return this.replyError(null, ErrorCodes.ParseError, `message nests deeper than ${this.limits.maxJsonDepth} levels`);
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch {
      return this.replyError(null, ErrorCodes.ParseError, "message is not valid JSON");
    }
    if (Array.isArray(msg)) return this.replyError(null, ErrorCodes.InvalidRequest, "batch requests are not supported");
    if (!msg || typeof msg !== "object" || msg.jsonrpc !== "2.0" || typeof msg.method !== "string") {
      return this.replyError(msg?.id ?? null, ErrorCodes.InvalidRequest, "not a JSON-RPC 2.0 request");
    }
    const id = msg.id;
    const isNotification = id === undefined;
    if (isNotification) return; // clients have nothing to notify the daemon of
    if (typeof id !== "number" && typeof id !== "string") return this.replyError(null, ErrorCodes.InvalidRequest, "id must be a number or string");
    if (this.inFlight >= this.limits.maxInFlight) {
      return this.replyError(id, ErrorCodes.TooManyRequests, `more than ${this.limits.maxInFlight} calls in flight on this connection`);
    }
    if (!isMethod(msg.method)) return this.replyError(id, JSONRPCErrorCode.MethodNotFound, `no such method '${String(msg.method).slice(0, 100)}'`);
    if (msg.params !== undefined && (typeof msg.params !== "object" || msg.params === null || Array.isArray(msg.params))) {
      return this.replyError(id, ErrorCodes.InvalidParams, "params: must be an object (by-name parameters)");
    }
    const params = msg.params ?? {};
    const problem = explainParams(msg.method, params);
    if (problem) return this.replyError(id, ErrorCodes.InvalidParams, problem);
    const unbound = bindingProblem(this.binding, msg.method, params);
    if (unbound) return this.replyError(id, BIND_ERROR_CODE, unbound);

    let streams: Record<string, number>;
    try {
      streams = this.prepareStreams(msg.method, params);
    } catch (err) {
      const e = err as DaemonError;
      return this.replyError(id, e.code, e.message);
    }
    this.binding = bindingOnCall(this.binding, msg.method);
    this.inFlight++;
    this.inFlightBytes += text.length;
    const wait = this.json.take(text.length);
    if (wait > 0) this.hold(new Promise((r) => setTimeout(r, wait)));
    else if (this.inFlightBytes > this.limits.maxInFlightBytes) this.updateReading();
    const request: JSONRPCRequest = { jsonrpc: "2.0", id, method: msg.method, params };
    const context = { request: `c${this.id}-${String(id).slice(0, 40)}`, tenant: this.tenant };
    callContext.run(context, () => this.rpc.receive(request, { conn: this, streams })).then((response) => {
      this.inFlight--;
      this.inFlightBytes -= text.length;
      this.updateReading();
      // bind=new: the connection is bound to the sandbox its create made (before the client hears of it).
      if (msg.method === "sandbox.create") this.binding = bindingAfterCreate(this.binding, (response && "result" in response && (response.result as { id?: string } | undefined)?.id) || null);
      if (response && "error" in response && response.error) {
        this.abortPrepared(params, streams, response.error.message);
        // What went wrong inside the daemon is in its log: the request id finds the lines.
        if (response.error.code === ErrorCodes.InternalError) response.error.message += ` (daemon log: request ${context.request})`;
      }
      if (response) this.sendJson(response);
    });
  }

  /** Registers the streams a call names before any of their frames can arrive. */
  private prepareStreams(method: keyof typeof METHODS, params: Record<string, unknown>): Record<string, number> {
    const spec = METHODS[method] as { inStreams?: readonly string[]; outStreams?: readonly string[] };
    const fields = [...(spec.inStreams ?? []).map((f) => [f, false] as const), ...(spec.outStreams ?? []).map((f) => [f, true] as const)];
    const named = fields.filter(([f]) => typeof params[f] === "number");
    if (named.length === 0) return {};
    const ids = named.map(([f]) => params[f] as number);
    for (const [f] of named) {
      const cid = params[f] as number;
      if (this.streams.has(cid) || ids.indexOf(cid) !== ids.lastIndexOf(cid)) throw new DaemonError("InvalidParams", `params.${f}: stream id ${cid} is already in use`);
    }
    if (this.streams.size + named.length > this.limits.maxStreams) {
      throw new DaemonError("ResourceLimit", `more than ${this.limits.maxStreams} open streams on this connection`);
    }
    const sb = this.manager.get(this.owner, params.sandbox as string);
    const out: Record<string, number> = {};
    // process.attach: the streams start at the daemon's kept output, not in the sandbox; all checked first.
    const attaching = method === "process.attach" ? sb.outputs.check(params.pid as number, { stdout: params.stdoutFrom as number | undefined, stderr: params.stderrFrom as number | undefined }, named.map(([f]) => f as "stdout" | "stderr")) : null;
    // Streams from the sandbox each take a window out of its stream budget: all of them fit, or none opens.
    if (!attaching) sb.link.streams.check(named.filter(([, outbound]) => outbound).length);
    for (const [field, outbound] of named) {
      const cid = params[field] as number;
      const client = this.endpoint(cid);
      const forget = () => this.streams.delete(cid);
      if (attaching) {
        const { relay, from } = sb.outputs.attach(attaching, field as "stdout" | "stderr", params[`${field}From`] as number | undefined, client, forget);
        this.streams.set(cid, { relay, outbound });
        out[`${field}From`] = from;
        continue;
      }
      const sid = sb.link.allocStream();
      if (outbound && method === "process.spawn") {
        // A process's output goes through a tap that keeps its tail, for a client that attaches again.
        const relay = sb.outputs.tapFor(sb.link, sid, (reason) => sb.link.onFatal(reason)).attach(client, 0, forget);
        this.streams.set(cid, { relay, outbound });
        out[field] = sid;
        continue;
      }
      const inside = sb.link.endpoint(sid);
      const relay = new Relay(
        outbound ? inside : client,
        outbound ? client : inside,
        (reason) => (outbound ? sb.link.onFatal(reason) : this.violation(reason)),
        () => {
          this.streams.delete(cid);
          sb.link.removeRelay(sid);
        },
        outbound ? sb.link.streams.open() : undefined,
      );
      this.streams.set(cid, { relay, outbound });
      sb.link.addRelay(sid, relay, outbound);
      out[field] = sid;
    }
    return out;
  }

  /** A call failed: the streams prepared for it will never carry anything. */
  private abortPrepared(params: Record<string, unknown>, streams: Record<string, number>, reason: string): void {
    for (const field of Object.keys(streams)) this.streams.get(params[field] as number)?.relay.abort(reason);
  }

  private onBinary(parts: Buffer[]): void {
    const frame = decodeFrameParts(parts);
    if (typeof frame === "string") return this.violation(`malformed stream frame: ${frame}`);
    const entry = this.streams.get(frame.stream);
    if (!entry) return; // a stream that already ended
    const { relay, outbound } = entry;
    switch (frame.op) {
      case FrameOp.Data: {
        if (outbound) return this.violation(`DATA on the daemon's stream ${frame.stream}`);
        this.manager.metrics.bytesIn.inc(frame.payload.byteLength);
        relay.data(frame.payload);
        // The sandbox is not reading its end (its channel is full): stop reading this client until it does.
        const behind = relay.dst.congestion();
        if (behind) this.hold(behind);
        return;
      }
      case FrameOp.End:
        if (outbound) return this.violation(`END on the daemon's stream ${frame.stream}`);
        return relay.end();
      case FrameOp.Credit:
        if (!outbound) return this.violation(`CREDIT on the client's stream ${frame.stream}`);
        return relay.credit(creditOf(frame));
      case FrameOp.Abort: {
        const reason = new TextDecoder().decode(frame.payload) || "aborted by the client";
        return outbound ? relay.abortFromDst(reason) : relay.abortFromSrc(reason);
      }
    }
  }

  private replyError(id: number | string | null, code: number, message: string): void {
    this.sendJson({ jsonrpc: "2.0", id, error: { code, message } });
  }

  private onClose(): void {
    this.closed = true;
    this.out.sub(this.unsent);
    this.unsent = 0;
    this.releaseQueue();
    for (const { relay } of [...this.streams.values()]) relay.abort("client disconnected");
    this.streams.clear();
    this.manager.detach(this);
  }
}
