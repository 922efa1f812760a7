import {
  BIND_ERROR_CODE,
  ErrorCodes,
  FrameOp,
  METHODS,
  bindingAfterCreate,
  bindingOnCall,
  bindingProblem,
  buildOpenRpc,
  encodeAbort,
  explainParams,
  frameProblem,
  isMethod,
  jsonDepth,
  type Binding,
  type MethodName,
} from "@sbx/protocol";
import type { Fleet } from "../fleet/fleet.js";
import type { Host } from "../fleet/host.js";
import type { Logger } from "../log.js";
import type { ByteBudget } from "../net/budget.js";
import type { ClientSocket } from "../net/client-socket.js";
import { messageByte, remask, type Frame } from "../net/frames.js";
import { Link } from "../net/link.js";
import type { NativeRelay } from "../net/native-relay.js";
import { createSandbox, listSandboxes } from "./fanout.js";
import { createWithVolumes, listAll, routeByRef, routeNew, slugTaken } from "./volumes.js";
import { ROUTES } from "./routes.js";
import { Upstream, type Pending, type UpstreamOwner } from "./upstream.js";

export interface SessionLimits {
  maxInFlight: number;
  maxStreams: number;
  maxJsonDepth: number;
}

type Id = number | string | null;

let openrpcText: string | null = null;

const streamFieldsOf = new Map<MethodName, readonly string[]>();
/** The params of `method` that name streams (its inStreams, then its outStreams). */
function streamFields(method: MethodName): readonly string[] {
  let fields = streamFieldsOf.get(method);
  if (!fields) {
    const spec = METHODS[method] as { inStreams?: readonly string[]; outStreams?: readonly string[] };
    streamFieldsOf.set(method, (fields = [...(spec.inStreams ?? []), ...(spec.outStreams ?? [])]));
  }
  return fields;
}

/**
 * One client connection to the gateway. Every call is sent on to the daemon holding its
 * sandbox (the host is in the sandbox id), over a connection of this client's own to that
 * daemon, made with its token; answers, notifications and stream frames come back as they
 * are. Binary frames are never decoded beyond their five-byte header: the client's frames go
 * to the daemon that the call naming their stream went to, flow control included.
 */
export class Session implements UpstreamOwner {
  readonly link: Link;
  private readonly upstreams = new Map<Host, Upstream>();
  /** A bound client's unbound connections to hosts, for the gateway's own lookups (a create's volumes). */
  private readonly askers = new Map<Host, Upstream>();
  /** The client's `bind` as given (a sandbox id or "new"), passed on to each daemon; null when not bound. */
  private readonly bind: string | null;
  /** The client's stream ids, each to the upstream whose call named it. */
  private readonly streams = new Map<number, Upstream>();
  private inFlight = 0;
  private closed = false;
  /**
   * Set while the client lags behind its answers: the gateway takes nothing more from it
   * meanwhile. Holding its link stops the socket and the messages already read alike (they wait
   * in its frame reader): a read full of rpc.discover calls, each answered with 110 KB by the
   * gateway itself, is not all answered into a client that reads nothing.
   */
  private clientBehind: Promise<void> | null = null;
  private readonly offLost: () => void;
  /** What the client's `bind` allows now (@sbx/protocol's binding: held here as a daemon holds it). */
  private binding: Binding;

  constructor(
    readonly client: ClientSocket,
    private readonly token: string,
    readonly fleet: Fleet,
    private readonly limits: SessionLimits,
    readonly log: Logger,
    private readonly gateway: ByteBudget,
    private readonly onClosed: () => void,
    binding: Binding = { kind: "none" },
    private readonly relay: NativeRelay | null = null,
  ) {
    this.binding = binding;
    // Each daemon holds the connection to the same promise: the client's bind goes on as given.
    this.bind = binding.kind === "none" ? null : binding.kind === "new" ? "new" : binding.id;
    this.link = new Link(client, gateway);
    client.start({
      text: (payload) => this.onText(payload.toString("utf8")),
      binary: (frame) => this.onBinary(frame),
      closed: () => {
        this.link.release();
        this.onClose();
        onClosed();
      },
    });
    // A host lost for the fleet is lost for this client at once, whether or not its socket to it has noticed yet.
    this.offLost = fleet.onHostLost((host, reason) => {
      for (const up of [this.upstreams.get(host), this.askers.get(host)]) up?.abandon(`the sbx daemon ${host.label} went away (${reason})`);
    });
    if (this.boundTo && relay) {
      // Opened now, so the connection can go to the relay before its first call.
      const where = fleet.lookup(this.boundTo);
      if (where && !("lost" in where)) this.upstreamFor(where.host);
      this.link.onIdle = () => this.maybeHandOff();
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** This client's connection to `host`, opened on first use. */
  upstreamFor(host: Host): Upstream {
    let up = this.upstreams.get(host);
    if (!up) {
      this.upstreams.set(host, (up = new Upstream(host, this.token, this, this.gateway, this.bind)));
      // Only a bound connection can go to the relay: the others never pay for asking.
      if (this.relay && this.bind !== null) up.link.onIdle = () => this.maybeHandOff();
    }
    return up;
  }

  /**
   * A connection to `host` for the gateway's own questions on this client's behalf (which host
   * holds a volume a create names): the client's own one when it is not bound; otherwise one of
   * its token's without a bind, since a daemon holds a bound connection to its one create.
   */
  askerFor(host: Host): Upstream {
    if (this.bind === null) return this.upstreamFor(host);
    let up = this.askers.get(host);
    if (!up) this.askers.set(host, (up = new Upstream(host, this.token, this, this.gateway, null)));
    return up;
  }

  /** The sandbox a bound connection is about, once known (at once, or once its create succeeded). */
  private get boundTo(): string | null {
    return this.binding.kind === "sandbox" ? this.binding.id : null;
  }

  /** A `bind=new` connection's create answered: made `sandbox` (it is about that one from now on), or failed (null). */
  created(sandbox: string | null): void {
    if (this.binding.kind !== "new") return;
    this.binding = bindingAfterCreate(this.binding, sandbox);
    if (sandbox) this.link.onIdle = () => this.maybeHandOff();
  }

  /**
   * A bound connection goes to the native relay as soon as it is quiet: nothing in flight or
   * unwritten either way, no stream open, between two messages on both sockets. From then on its
   * bytes pass through without this process (see NativeRelay); the daemon holds it to its one
   * sandbox. Called whenever something that could make it quiet happens.
   */
  private maybeHandOff(): void {
    const relay = this.relay;
    if (!relay?.available || !this.boundTo || this.closed || this.inFlight > 0 || this.streams.size > 0 || this.clientBehind) return;
    const where = this.fleet.lookup(this.boundTo);
    if (!where || "lost" in where) return;
    // A daemon that does not hold the connection to its bind itself gets it through the gateway's own path only.
    if (!where.host.holdsBindings) return;
    const up = this.upstreams.get(where.host);
    if (!up?.quiet || !this.link.idle || !this.client.quiet) return;
    this.closed = true;
    this.offLost();
    for (const other of this.upstreams.values()) if (other !== up) other.close();
    this.upstreams.clear();
    this.closeAskers();
    this.link.release();
    relay.adopt(this.client.surrender(), up.surrender(), where.host, this.boundTo);
    this.onClosed();
  }

  reply(id: Id, result: unknown): void {
    this.sendText(JSON.stringify({ jsonrpc: "2.0", id, result }));
  }

  replyError(id: Id, error: { code: number; message: string; data?: unknown }): void {
    this.sendText(JSON.stringify({ jsonrpc: "2.0", id, error }));
  }

  private fail(id: Id, code: number, message: string): void {
    this.replyError(id, { code, message });
  }

  private onText(text: string): void {
    // The same checks, in the same order and words, as the daemon's.
    if (jsonDepth(text) > this.limits.maxJsonDepth) return this.fail(null, ErrorCodes.ParseError, `message nests deeper than ${this.limits.maxJsonDepth} levels`);
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch {
      return this.fail(null, ErrorCodes.ParseError, "message is not valid JSON");
    }
    if (Array.isArray(msg)) return this.fail(null, ErrorCodes.InvalidRequest, "batch requests are not supported");
    if (!msg || typeof msg !== "object" || msg.jsonrpc !== "2.0" || typeof msg.method !== "string") {
      return this.fail(msg?.id ?? null, ErrorCodes.InvalidRequest, "not a JSON-RPC 2.0 request");
    }
    const id = msg.id;
    if (id === undefined) return;
    if (typeof id !== "number" && typeof id !== "string") return this.fail(null, ErrorCodes.InvalidRequest, "id must be a number or string");
    if (this.inFlight >= this.limits.maxInFlight) return this.fail(id, ErrorCodes.TooManyRequests, `more than ${this.limits.maxInFlight} calls in flight on this connection`);
    if (!isMethod(msg.method)) return this.fail(id, ErrorCodes.MethodNotFound, `no such method '${String(msg.method).slice(0, 100)}'`);
    if (msg.params !== undefined && (typeof msg.params !== "object" || msg.params === null || Array.isArray(msg.params))) {
      return this.fail(id, ErrorCodes.InvalidParams, "params: must be an object (by-name parameters)");
    }
    const method: MethodName = msg.method;
    const params = msg.params ?? {};
    const problem = explainParams(method, params);
    if (problem) return this.fail(id, ErrorCodes.InvalidParams, problem);
    // Held to its bind as a daemon would hold it, before the gateway answers a call itself or routes it.
    const refused = bindingProblem(this.binding, method, params);
    if (refused) return this.fail(id, BIND_ERROR_CODE, refused);
    this.binding = bindingOnCall(this.binding, method);

    const route = ROUTES[method];
    switch (route.kind) {
      case "sandbox":
        // A sandbox's snapshot takes a slug no host has for this token yet, as a volume's does (volumes.ts).
        if (method === "sandbox.snapshot") return this.track(id, slugTaken(this, id, params.slug).then((taken) => (taken ? this.replyError(id, taken) : this.route(text, msg, method, params, params[route.field]))));
        return this.route(text, msg, method, params, params[route.field]);
      case "create": {
        // A sandbox naming volumes or a root goes to the host holding them.
        const create = params.root !== undefined || Object.keys(params.volumes ?? {}).length ? createWithVolumes(this, id, params) : createSandbox(this, id, params);
        return this.track(
          id,
          // A create that answered with an error leaves a bind=new connection free to try again.
          create.finally(() => this.binding.kind === "new" && this.created(null)),
        );
      }
      case "list":
        return this.track(id, listSandboxes(this, id, params));
      case "volume":
        if (route.how === "list") return this.track(id, listAll(this, id, method as "volume.list" | "snapshot.list", params));
        return this.track(id, route.how === "new" ? routeNew(this, id, method as "volume.create" | "image.build", params) : routeByRef(this, id, text, msg, method, params));
      case "local":
        openrpcText ??= JSON.stringify(buildOpenRpc());
        return this.sendText(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${openrpcText}}`);
      case "host":
        return this.fail(id, ErrorCodes.MethodNotFound, `${method} is a per-host operator method: the gateway does not forward it; call it on a daemon with its operator token`);
    }
  }

  /** Counts a call the gateway answers itself (create, list) as in flight until it does. */
  private track(id: number | string, call: Promise<void>): void {
    this.inFlight++;
    void call
      .catch((err) => {
        this.log.error(`gateway call failed: ${(err as Error)?.stack ?? err}`);
        this.fail(id, ErrorCodes.InternalError, `the gateway failed: ${(err as Error)?.message ?? err}`);
      })
      .finally(() => {
        this.inFlight--;
        this.maybeHandOff();
      });
  }

  private route(text: string, msg: { id: number | string; method: string }, method: MethodName, params: Record<string, unknown>, sandbox: string): void {
    const fields = streamFields(method);
    const ids: number[] = [];
    for (const f of fields) if (typeof params[f] === "number") ids.push(params[f]);
    // The first field naming a repeated id is the one named, in the daemon's words.
    for (const f of fields) {
      const cid = params[f];
      if (typeof cid !== "number") continue;
      if (this.streams.has(cid) || ids.indexOf(cid) !== ids.lastIndexOf(cid)) return this.fail(msg.id, ErrorCodes.InvalidParams, `params.${f}: stream id ${cid} is already in use`);
    }
    if (this.streams.size + ids.length > this.limits.maxStreams) return this.fail(msg.id, ErrorCodes.ResourceLimit, `more than ${this.limits.maxStreams} open streams on this connection`);
    const where = this.fleet.lookup(sandbox);
    // The daemon's own words for an id that leads nowhere (no hint whether it ever existed),
    // unless some daemon has not said who it is yet: then the sandbox may be there.
    if (!where) {
      const unknown = this.fleet.unidentified();
      const maybe = unknown > 0 ? ` (or it is on one of the ${unknown} sbx daemons this gateway cannot reach now)` : "";
      return this.fail(msg.id, ErrorCodes.SandboxNotFound, `no running sandbox '${sandbox.slice(0, 128)}'${maybe}`);
    }
    if ("lost" in where) {
      return this.fail(msg.id, ErrorCodes.Unavailable, `host lost: sandbox ${sandbox} was on the sbx daemon ${where.lost.label}, which went away (${where.lost.reason}); its sandboxes are gone or unreachable`);
    }
    const up = this.upstreamFor(where.host);
    for (const cid of ids) {
      this.streams.set(cid, up);
      up.streams.add(cid);
    }
    this.inFlight++;
    up.forward(text, msg, sandbox);
    const behind = up.link.congestion();
    if (behind) this.link.hold(behind);
  }

  /** A call with no streams, to `host` as the client sent it (the gateway chose the host itself). */
  forwardTo(host: Host, text: string, msg: { id: number | string; method: string }): void {
    if (this.closed) return;
    this.inFlight++;
    this.upstreamFor(host).forward(text, msg, null);
  }

  /** A client's binary frame: its header checked as the daemon would, then passed on re-masked. */
  /** A stream frame from the client, whole or in fragments (the SDK sends DATA as header, then payload): passed on as the client framed it. */
  private onBinary(frames: Frame[]): void {
    let n = 0;
    for (const f of frames) n += f.payloadLength;
    const byte = (i: number) => messageByte(frames, i);
    const op = n >= 1 ? byte(0) : 0;
    const stream = n >= 5 ? ((byte(1) << 24) | (byte(2) << 16) | (byte(3) << 8) | byte(4)) >>> 0 : 0;
    const problem = frameProblem(n, op, stream);
    if (problem) return this.violation(`malformed stream frame: ${problem}`);
    const up = this.streams.get(stream);
    if (!up) return; // a stream that already ended, as at the daemon
    if (op === FrameOp.End || op === FrameOp.Abort) this.forget(stream);
    for (const f of frames) up.sendFrame(remask(f));
    const behind = up.link.congestion();
    if (behind) this.link.hold(behind);
  }

  private violation(reason: string): void {
    this.log.warn(`client connection: ${reason}; closing it`);
    this.client.close(1008, reason);
  }

  private forget(stream: number): void {
    this.streams.get(stream)?.streams.delete(stream);
    this.streams.delete(stream);
  }

  private sendText(text: string): void {
    this.toClient(text);
  }

  /**
   * Everything to the client goes through here. While it lags, neither its upstreams nor the
   * client itself is read (as the daemon stops reading a client that does not read its answers):
   * a client costs the gateway a bounded amount whether its answers come from a daemon or from
   * the gateway itself.
   */
  private toClient(data: string | Buffer): void {
    this.link.send(data);
    this.checkClient();
  }

  /** A daemon's frame, to the client as the daemon sent it (both are server frames). */
  private frameToClient(raw: Buffer[]): void {
    if (!this.client.isOpen) return;
    this.link.sendFrame(raw);
    this.checkClient();
  }

  private checkClient(): void {
    if (this.clientBehind) return;
    const behind = this.link.congestion();
    if (!behind) return;
    this.clientBehind = behind;
    void behind.then(() => (this.clientBehind = null));
    this.link.hold(behind);
    for (const up of this.upstreams.values()) up.link.hold(behind);
  }

  // ---- what upstreams report

  answered(up: Upstream, pending: Pending, text: string, raw: Buffer[] | null): void {
    this.inFlight--;
    if (raw) this.frameToClient(raw);
    else this.sendText(text);
  }

  opened(): void {
    this.maybeHandOff();
  }

  notified(up: Upstream, text: string, raw: Buffer[] | null): void {
    if (raw) this.frameToClient(raw);
    else this.sendText(text);
  }

  binary(up: Upstream, raw: Buffer[], op: number, stream: number): void {
    // END and ABORT from the daemon end a stream: later frames from the client for it are dropped here.
    if ((op === FrameOp.End || op === FrameOp.Abort) && this.streams.get(stream) === up) this.forget(stream);
    this.frameToClient(raw);
  }

  gone(up: Upstream, reason: string, code: number, closeReason: string): void {
    if (this.askers.get(up.host) === up) return void this.askers.delete(up.host); // its calls were the gateway's own: they fail by themselves
    if (this.upstreams.get(up.host) === up) this.upstreams.delete(up.host);
    if (this.closed) return;
    // The daemon closed this client for a protocol violation: as it would have, directly.
    if (code === 1008) return void this.client.close(1008, closeReason);
    // As the daemon does when a call fails: its streams are aborted before the call is answered.
    for (const stream of [...up.streams]) {
      this.forget(stream);
      this.toClient(Buffer.from(encodeAbort(stream, `host lost: ${reason}`)));
    }
    for (const p of up.pending.values()) {
      if (p.internal) continue;
      this.inFlight--;
      this.fail(p.clientId, ErrorCodes.Unavailable, `host lost during ${p.method}: ${reason}`);
    }
    up.pending.clear();
    // Sandbox.exit is what an SDK waits on for a sandbox's processes: nothing is left hanging.
    for (const id of up.touched) {
      this.sendText(JSON.stringify({ jsonrpc: "2.0", method: "sandbox.exit", params: { id, reason: "error", message: `host lost: ${reason}`.slice(0, 4000) } }));
    }
    up.touched.clear();
  }

  private onClose(): void {
    this.closed = true;
    this.offLost();
    for (const up of this.upstreams.values()) up.close();
    this.upstreams.clear();
    this.closeAskers();
    this.streams.clear();
  }

  private closeAskers(): void {
    for (const up of this.askers.values()) up.close();
    this.askers.clear();
  }
}
