import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { TLSSocket, type SecureContext } from "node:tls";
import { AllowList } from "../policy/allowlist.js";
import type { CertificateAuthority } from "../tls/ca.js";
import { TargetError } from "../policy/errors.js";
import { forward, forwardUpgrade, type ForwardHooks, type Route } from "./forward.js";
import { refusal, refuse } from "./http.js";
import type { Budget, SandboxEgressBudgets } from "./limits.js";
import type { EgressJournal } from "./journal.js";
import { decideEgress, stillAllowed, type DecideOptions, type EgressDecision } from "../policy/policy.js";
import { SecretBlocked, SecretSet } from "../secrets/secrets.js";
import { hostPort } from "../policy/host.js";
import { clientHelloServerName, type HelloName } from "./sniff.js";
import { Tunnel, type Allowed, type OpenConnection, type TunnelHost, type TunnelOptions } from "./tunnel.js";
import { hostHeaderAgrees, parseAbsoluteUri, parseConnectTarget, sniAgrees, type Target } from "../policy/target.js";

/** What the proxy needs to intercept TLS for a secret's hosts. */
export interface InterceptTls {
  ca: CertificateAuthority;
  /** What a secret host's real certificate is verified against. */
  upstreamTrust: SecureContext;
}

/** A CONNECT tunnel whose requests the proxy reads: TLS it terminated for a secret's host, or plaintext. */
interface Intercepted extends OpenConnection {
  /** The sandbox's upstream connections this tunnel's requests go out on. */
  agent: Agent;
  scheme: "http" | "https";
}

/**
 * One sandbox's egress proxy: the only way out of its network namespace. It listens on a
 * unix socket bound into the sandbox (the supervisor bridges 127.0.0.1:3128 inside to it),
 * decides every CONNECT and plain-HTTP request against the sandbox's allow-list, dials the
 * vetted address itself, and records each decision. Node's HTTP parser runs in strict mode,
 * so smuggling shapes (Content-Length with Transfer-Encoding, obs-fold, bad chunking) are
 * answered 400 and never forwarded. Tunnels to a host one of the sandbox's secrets is bound
 * to are terminated with a leaf from the daemon's CA, so their requests can be read (see
 * forward.ts); in a sandbox holding secrets plaintext tunnels are read too (see tunnel()).
 * TLS to any other host stays opaque.
 */
export class EgressProxy {
  private readonly server: Server;
  /** Plain-HTTP upstream connections are reused across a sandbox's requests, like any client's. */
  private readonly upstreamAgent: Agent;
  /** Verified TLS connections to secret hosts, reused across the sandbox's tunnels (never across sandboxes). */
  private readonly secureAgent: Agent;
  /** Parses the requests inside intercepted tunnels; it never listens, tunnels are handed to it. */
  private readonly inner: Server;
  private readonly intercepted = new WeakMap<Duplex, Intercepted>();
  private allowList: AllowList;
  private secrets = SecretSet.none;
  private readonly open = new Set<OpenConnection>();
  /** Its owner's share of the daemon's connections, once it has an owner (setOwner). */
  private token: Budget | null = null;

  constructor(
    allowList: AllowList,
    private readonly journal: EgressJournal,
    private readonly decide: DecideOptions,
    private readonly budgets: SandboxEgressBudgets,
    private readonly tls: InterceptTls | null = null,
  ) {
    this.allowList = allowList;
    this.upstreamAgent = budgets.shared.dialer.agent("http", { keepAlive: true, maxSockets: 64 });
    this.secureAgent = budgets.shared.dialer.agent("https", { keepAlive: true, maxSockets: 64 });
    this.server = httpServer();
    this.server.on("connection", (socket: Socket) => this.admit(socket));
    this.server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.safely(socket, () => this.onConnect(req, socket, head)));
    this.server.on("request", (req: IncomingMessage, res: ServerResponse) => this.safely(req.socket, () => this.onRequest(req, res)));
    this.inner = httpServer();
    this.inner.on("request", (req: IncomingMessage, res: ServerResponse) => this.safely(req.socket, () => this.onInterceptedRequest(req, res)));
    this.inner.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.safely(socket, () => this.onInterceptedUpgrade(req, socket, head)));
    this.inner.on("connect", (_req: IncomingMessage, socket: Duplex) => socket.end(refusal(400, "CONNECT inside an intercepted tunnel is not allowed")));
  }

  /** Told of a failure in the proxy's own handling of a request (scrubbed of secret values); the connection is closed. */
  onInternalError: (message: string) => void = () => {};
  /** Told when a connection is turned away at a bound (for the daemon's rate-limited log). */
  onBound: (message: string) => void = () => {};

  /** The sandbox has its owner: from now on its connections count against that token's share too. */
  setOwner(owner: string): void {
    this.token = this.budgets.shared.forToken(owner);
    this.budgets.connections.moveUnder(this.token);
  }

  /**
   * Every connection from the sandbox counts against its connection budget (its token's and the
   * daemon's) until it closes; past any of them it gets a 503 naming the bound. One that has not
   * sent a whole request (or CONNECT) within `firstRequestMs` is closed: idle sockets cost descriptors.
   */
  private admit(socket: Socket): void {
    socket.on("error", () => {});
    if (!this.budgets.connections.take(1)) {
      const full = this.budgets.connections.exhausted;
      const reason =
        full === this.budgets.connections
          ? `this sandbox has ${full.limit} open proxy connections, the most it may (egress.maxConnectionsPerSandbox)`
          : full !== null && full === this.token
            ? `this sandbox's token has ${full.limit} open proxy connections over its sandboxes, the most it may (egress.maxConnectionsPerToken)`
            : "the daemon has as many open proxy connections as it may over all sandboxes (egress.maxConnections); try again";
      this.onBound(reason);
      // Closed as soon as the answer is out: a client that never reads or closes must not keep the descriptor.
      socket.end(refusal(503, reason), () => socket.destroy());
      return;
    }
    socket.once("close", () => this.budgets.connections.give(1));
    const idle = setTimeout(() => socket.destroy(), this.budgets.shared.bounds.firstRequestMs);
    idle.unref();
    const started = () => clearTimeout(idle);
    socket.once("close", started);
    (socket as Socket & { [FIRST_REQUEST]?: () => void })[FIRST_REQUEST] = started;
  }

  /**
   * Runs a handler so that nothing a sandbox sends can take the daemon down: a throw or a
   * rejection closes that connection and is reported, scrubbed of every secret value.
   */
  private safely(socket: Duplex | null | undefined, handle: () => unknown): void {
    const fail = (err: unknown) => {
      socket?.destroy();
      this.reportFailure(err);
    };
    try {
      const result = handle();
      if (result instanceof Promise) result.catch(fail);
    } catch (err) {
      fail(err);
    }
  }

  private reportFailure(err: unknown): void {
    this.onInternalError(this.secrets.scrubText(err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 500));
  }

  /** The sandbox's secrets: from now on their hosts are intercepted and their placeholders watched. */
  setSecrets(secrets: SecretSet): void {
    if (!secrets.empty && !this.tls) throw new Error("this proxy was started without a CA, so it cannot hold secrets");
    this.secrets = secrets;
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(path, () => resolve());
    });
  }

  /** Replaces the allow-list; open connections it no longer allows are closed. */
  setAllowList(allowList: AllowList): void {
    this.allowList = allowList;
    for (const conn of [...this.open]) {
      if (!stillAllowed(conn.target, conn.dialled, allowList, this.decide)) {
        for (const s of conn.sockets) s.destroy();
        this.open.delete(conn);
      }
    }
  }

  close(): void {
    for (const conn of this.open) for (const s of conn.sockets) s.destroy();
    this.open.clear();
    this.upstreamAgent.destroy();
    this.secureAgent.destroy();
    this.server.close();
    this.server.closeAllConnections();
    this.secrets = SecretSet.none;
  }

  private async onConnect(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    client.on("error", () => {});
    firstRequestArrived(client);
    // A tunnel that moves nothing either way for idleMs is closed: idle ones would hold their
    // connection (and its share of the token's and the daemon's) for ever. Every byte of it, in
    // either direction, passes through this socket.
    (client as Socket).setTimeout(this.budgets.shared.bounds.idleMs, () => client.destroy());
    let target: Target;
    try {
      target = parseConnectTarget(req.url ?? "");
    } catch (err) {
      return void client.end(refusal(400, err instanceof TargetError ? err.message : "bad CONNECT target"));
    }
    const decision = await decideEgress(target, this.allowList, this.options());
    this.journal.record({ host: target.host, port: target.port, method: "CONNECT", allowed: decision.allowed, ...(decision.allowed ? {} : { reason: decision.reason }) }, decision.allowed ? undefined : decision.kind);
    if (!decision.allowed) return void client.end(refusal(decision.status, decision.reason));
    // A sandbox holding secrets gets no tunnel the proxy could read (TLS to a secret's host,
    // plaintext to any host) passed on unread.
    const readPlaintext = !this.secrets.empty;
    const interceptable = readPlaintext && this.tls !== null && target.kind === "name" && this.secrets.intercepts(target.host, target.port);
    if (!interceptable) return this.tunnel(target, decision, client, head, { answered: false, readPlaintext });
    // A secret's host: the proxy answers at once and reads the first bytes to see whether they are TLS.
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    const first = await firstBytes(client, head);
    if (first === null) return void client.destroy();
    const hello = clientHelloServerName(first);
    if (hello === "not-tls") return this.tunnel(target, decision, client, first, { answered: true, readPlaintext });
    if (hello === "bad" || !sniAgrees(hello ?? undefined, target)) return this.refuseHello(target, hello, () => client.destroy());
    client.pause();
    client.unshift(first);
    this.intercept(target, decision, client, this.tls!);
  }

  /** A tunnel the proxy does not terminate (see {@link Tunnel} for its steps). */
  private tunnel(target: Target, decision: Allowed, client: Duplex, head: Buffer, opts: TunnelOptions): void {
    const host: TunnelHost = {
      journal: this.journal,
      secrets: this.secrets,
      dialer: this.budgets.shared.dialer,
      track: (conn) => {
        this.open.add(conn);
        return () => this.open.delete(conn);
      },
      count: (c, upstream) => this.count(c, upstream),
      refuseHello: (t, hello, close) => this.refuseHello(t, hello, close),
      readAsHttp: (t, d, c) => this.readTunnel(t, d, c, "http", c),
    };
    new Tunnel(host, target, decision, client, head, opts);
  }


  private refuseHello(target: Target, hello: HelloName, close: () => void): void {
    const reason =
      hello === "bad"
        ? `a malformed TLS ClientHello was sent toward ${hostPort(target.host, target.port)}`
        : `the TLS server name '${String(hello).slice(0, 200)}' disagrees with the CONNECT target ${hostPort(target.host, target.port)}`;
    this.journal.record({ host: target.host, port: target.port, method: "TLS", allowed: false, reason }, "tls-server-name");
    close();
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    firstRequestArrived(req.socket);
    const reject = (status: 400 | 403 | 502, reason: string) => refuse(res, status, reason);
    let target: ReturnType<typeof parseAbsoluteUri>;
    try {
      target = parseAbsoluteUri(req.url ?? "");
    } catch (err) {
      return reject(400, err instanceof TargetError ? err.message : "a proxy request needs an absolute http:// URI");
    }
    if (target.scheme !== "http") return reject(400, "use CONNECT for https:// through this proxy");
    if (req.headers.host !== undefined && !hostHeaderAgrees(req.headers.host, target, 80)) {
      return reject(400, `the Host header '${req.headers.host.slice(0, 200)}' disagrees with the request target ${hostPort(target.host, target.port)}`);
    }
    // A placeholder over plain HTTP blocks the request whatever the host (the body is checked as it streams, in forward()).
    const carried = this.secrets.checkPlain(req.url ?? "", req.rawHeaders, { host: target.host, port: target.port, scheme: "http" });
    if (carried) {
      this.journal.record({ host: target.host, port: target.port, method: req.method ?? "GET", allowed: false, reason: carried.message, secret: carried.secret });
      return reject(403, carried.message);
    }
    const decision = await decideEgress(target, this.allowList, this.options());
    this.journal.record({ host: target.host, port: target.port, method: req.method ?? "GET", allowed: decision.allowed, ...(decision.allowed ? {} : { reason: decision.reason }) }, decision.allowed ? undefined : decision.kind);
    if (!decision.allowed) return reject(decision.status, decision.reason);

    const route: Route = { to: { host: target.host, port: target.port, scheme: "http" }, address: decision.address, port: decision.port, path: target.path, agent: this.upstreamAgent, resolved: decision.via === "dns" };
    forward(req, res, route, this.hooks(target, decision, req.method ?? "GET", [req.socket]));
  }

  /**
   * Terminates the tunnel's TLS with a leaf for the target (only if the client's SNI agrees
   * with it) and hands the plaintext to the inner HTTP server; each request then goes out on
   * a verified TLS connection of the proxy's own.
   */
  private intercept(target: Target, decision: Allowed, client: Duplex, tls: InterceptTls): void {
    const context = tls.ca.contextFor(target.host);
    const secure = new TLSSocket(client as Socket, {
      isServer: true,
      secureContext: context,
      ALPNProtocols: ["http/1.1"],
      // onConnect vetted this very ClientHello; this is the backstop should that ever change.
      SNICallback: (name, cb) => (sniAgrees(name, target) ? cb(null, context) : this.refuseHello(target, name, () => cb(new Error("the TLS server name disagrees")))),
    });
    this.readTunnel(target, decision, client, "https", secure);
  }

  /**
   * Hands a tunnel whose requests the proxy can read (decrypted, or plaintext to begin with)
   * to the inner HTTP server; each request then goes out on a connection of the proxy's own.
   */
  private readTunnel(target: Target, decision: Allowed, client: Duplex, scheme: "http" | "https", stream: Duplex): void {
    const agent = scheme === "https" ? this.secureAgent : this.upstreamAgent;
    const conn: Intercepted = { target, dialled: decision, sockets: [client, stream], agent, scheme };
    this.open.add(conn);
    this.intercepted.set(stream, conn);
    const done = () => {
      this.open.delete(conn);
      stream.destroy();
      client.destroy();
    };
    stream.on("error", done);
    stream.once("close", done);
    client.once("close", done);
    this.inner.emit("connection", stream);
    // The HTTP parser reads the socket's handle directly; the first bytes put back wait in the stream until it flows again.
    if (stream === client) client.resume();
  }

  private onInterceptedRequest(req: IncomingMessage, res: ServerResponse): void {
    const conn = this.intercepted.get(req.socket);
    if (!conn) return void res.socket?.destroy();
    const path = this.originForm(req, conn, (reason) => refuse(res, 400, reason));
    if (path === null) return;
    forward(req, res, this.routeOf(conn, path), this.hooks(conn.target, conn.dialled, req.method ?? "GET", conn.sockets));
  }

  private onInterceptedUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const conn = this.intercepted.get(socket);
    if (!conn) return void socket.destroy();
    const path = this.originForm(req, conn, (reason) => socket.end(refusal(400, reason)));
    if (path === null) return;
    forwardUpgrade(req, socket, head, this.routeOf(conn, path), this.hooks(conn.target, conn.dialled, req.method ?? "GET", conn.sockets));
  }

  private routeOf(conn: Intercepted, path: string): Route {
    const { target, dialled, scheme } = conn;
    return { to: { host: target.host, port: target.port, scheme }, address: dialled.address, port: dialled.port, path, agent: conn.agent, resolved: dialled.via === "dns", ...(scheme === "https" ? { trust: this.tls!.upstreamTrust } : {}) };
  }

  /**
   * The path to ask for on an intercepted tunnel: requests there may only be for the tunnel's
   * own host (Host header and any absolute-form target must agree), so no request can ride a
   * secret's connection to another virtual host.
   */
  private originForm(req: IncomingMessage, conn: Intercepted, refuse: (reason: string) => void): string | null {
    const { target } = conn;
    const host = req.headers.host;
    if (host === undefined || !hostHeaderAgrees(host, target, conn.scheme === "https" ? 443 : 80)) {
      refuse(`the Host header '${String(host ?? "").slice(0, 200)}' disagrees with the tunnel to ${hostPort(target.host, target.port)}`);
      return null;
    }
    const url = req.url ?? "";
    if (url.startsWith("/")) return url;
    if (url === "*" && req.method === "OPTIONS") return url;
    try {
      const abs = parseAbsoluteUri(url);
      if (abs.scheme === conn.scheme && abs.host === target.host && abs.port === target.port) return abs.path;
    } catch {
      // Refused below.
    }
    refuse(`the request target '${url.slice(0, 200)}' is not for the tunnel to ${hostPort(target.host, target.port)}`);
    return null;
  }

  /** The callbacks forward() reports through: counters, refusals and the connection's sockets. */
  private hooks(target: Target, dialled: OpenConnection["dialled"], method: string, sockets: Array<Socket | Duplex>): ForwardHooks {
    let conn: OpenConnection | null = null;
    return {
      secrets: this.secrets,
      budgets: this.budgets,
      dialer: this.budgets.shared.dialer,
      blocked: (err: SecretBlocked) => this.journal.record({ host: target.host, port: target.port, method, allowed: false, reason: err.message, secret: err.secret }),
      bytesOut: (n) => (this.journal.bytesOut += n),
      bytesIn: (n) => (this.journal.bytesIn += n),
      opened: (upstream) => {
        conn = { target, dialled, sockets: [...sockets, upstream] };
        this.open.add(conn);
      },
      closed: () => {
        if (conn) this.open.delete(conn);
      },
      failed: (err) => this.reportFailure(err),
    };
  }

  /** The decision options with this host's own addresses (the daemon re-reads them at most once a second). */
  private options(): DecideOptions {
    return { ...this.decide, hostAddresses: this.budgets.shared.hostAddresses() };
  }

  private count(client: Duplex, upstream: Socket): void {
    client.on("data", (chunk: Buffer) => (this.journal.bytesOut += chunk.length));
    upstream.on("data", (chunk: Buffer) => (this.journal.bytesIn += chunk.length));
  }
}

/** Where a sandbox connection keeps the function that stops its first-request timer. */
const FIRST_REQUEST = Symbol("firstRequest");

function firstRequestArrived(socket: Duplex | null): void {
  (socket as (Duplex & { [FIRST_REQUEST]?: () => void }) | null)?.[FIRST_REQUEST]?.();
}

/** The proxy's HTTP parser: strict, bounded headers, and a clear 400 for anything malformed. */
function httpServer(): Server {
  const server = createServer({ insecureHTTPParser: false, requestTimeout: 60_000, maxHeaderSize: 32 * 1024 });
  server.on("clientError", (err: Error, socket: Duplex) => {
    if (socket.writable) socket.end(refusal(400, `malformed request: ${err.message}`));
    else socket.destroy();
  });
  return server;
}

/**
 * The first bytes a client sends into a tunnel: enough to tell a TLS ClientHello (whole) from
 * anything else; null if the client goes away first. Nothing is consumed for good: the caller
 * puts the bytes back.
 */
function firstBytes(client: Duplex, head: Buffer): Promise<Buffer | null> {
  return new Promise((resolve) => {
    let first = head;
    if (first.length && clientHelloServerName(first) !== "more") return resolve(first);
    const onData = (chunk: Buffer) => {
      first = Buffer.concat([first, chunk]);
      if (clientHelloServerName(first) !== "more") finish(first);
    };
    const finish = (result: Buffer | null) => {
      client.off("data", onData);
      client.off("close", onClose);
      client.pause();
      resolve(result);
    };
    const onClose = () => finish(null);
    client.on("data", onData);
    client.once("close", onClose);
  });
}
