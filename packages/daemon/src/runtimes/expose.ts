/**
 * exposeHttp: a URL on the daemon's host that reaches an HTTP server inside a sandbox. Each
 * exposure is a listener of its own (on the daemon's listen address, a free port), proxying to
 * the port inside through a Tunnel; the sandbox gets no inbound network. Access needs the
 * exposure's own unguessable token unless it was made public: as the URL's first path segment
 * (`/<token>/...`, stripped before forwarding; the response sets a cookie so a browser's later
 * absolute links work), an `X-Sbx-Token` header, or that cookie. The daemon's own token is never
 * accepted here: an exposure URL handed to someone gives them that server, not the daemon.
 * HTTP/1.1 with keep-alive, streamed responses (SSE) and upgrades (WebSocket) pass through.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Agent, createServer, request, type ClientRequestArgs, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { DaemonError } from "../util/errors.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { openTunnel } from "./tunnel.js";
import { EGRESS_BRIDGE_PORT } from "../sandbox/environment.js";

/** Exposures one sandbox may hold at once. */
export const MAX_EXPOSURES = 16;
/** Client connections one exposure serves at once. */
const MAX_CONNECTIONS = 256;
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "x-sbx-token"]);

const digest = (s: string) => createHash("sha256").update(s).digest();

/** One exposed port. */
export class Exposure {
  readonly url: string;
  private readonly agent: Agent;
  private readonly cookie: string;
  private readonly tokenDigest: Buffer | null;

  private constructor(
    private readonly sb: Sandbox,
    readonly port: number,
    private readonly server: Server,
    token: string | null,
    host: string,
    listenPort: number,
  ) {
    this.tokenDigest = token === null ? null : digest(token);
    this.cookie = `sbx_expose_${listenPort}`;
    const hostPart = host.includes(":") ? `[${host}]` : host;
    this.url = `http://${hostPart}:${listenPort}/${token === null ? "" : `${token}/`}`;
    // Keep-alive to the server inside: one tunnel serves many requests, as a socket would.
    const agent = new Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 8 });
    (agent as unknown as { createConnection: () => Duplex }).createConnection = () => openTunnel(this.sb, this.port);
    this.agent = agent;
    server.on("request", (req, res) => this.onRequest(req, res));
    server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  static async open(sb: Sandbox, port: number, opts: { public: boolean; host: string; bind: string }): Promise<Exposure> {
    const server = createServer({ keepAliveTimeout: 30_000 });
    server.maxConnections = MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, opts.bind, () => resolve());
    });
    const token = opts.public ? null : randomBytes(24).toString("base64url");
    return new Exposure(sb, port, server, token, opts.host, (server.address() as AddressInfo).port);
  }

  close(): void {
    this.server.close();
    this.server.closeAllConnections();
    this.agent.destroy();
  }

  /** The path to forward, or null when the caller did not prove it holds the token. */
  private authorize(req: IncomingMessage): { path: string; viaPath: boolean } | null {
    const path = req.url ?? "/";
    // Origin-form only: an absolute URI or authority form would make the server inside a proxy.
    if (!path.startsWith("/")) return null;
    if (this.tokenDigest === null) return { path, viaPath: false };
    const m = /^\/([A-Za-z0-9_-]{32})(\/.*|\?.*)?$/.exec(path);
    if (m && this.matches(m[1]!)) return { path: m[2] === undefined ? "/" : m[2]!.startsWith("?") ? `/${m[2]}` : m[2]!, viaPath: true };
    const header = req.headers["x-sbx-token"];
    if (typeof header === "string" && this.matches(header)) return { path, viaPath: false };
    const cookie = cookieValue(req.headers.cookie, this.cookie);
    if (cookie !== null && this.matches(cookie)) return { path, viaPath: false };
    return null;
  }

  private matches(candidate: string): boolean {
    return timingSafeEqual(digest(candidate), this.tokenDigest!);
  }

  /** The request's headers for the server inside: hop-by-hop ones and our credential left out. */
  private forwardHeaders(req: IncomingMessage): string[] {
    const out: string[] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!;
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) continue;
      if (lower === "cookie") {
        const rest = withoutCookie(req.rawHeaders[i + 1]!, this.cookie);
        if (rest) out.push(name, rest);
        continue;
      }
      out.push(name, req.rawHeaders[i + 1]!);
    }
    return out;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const auth = this.authorize(req);
    if (!auth) return void res.writeHead(401, { "Content-Type": "text/plain", "X-Sbx-Error": "this exposed port needs its token" }).end("401: this URL needs the exposure's token (as its first path segment, an X-Sbx-Token header, or the cookie the token URL sets)\n");
    const headers = this.forwardHeaders(req);
    const upstream = request({ agent: this.agent, method: req.method, path: auth.path, headers: headers as unknown as ClientRequestArgs["headers"], setHost: false });
    upstream.on("response", (up) => {
      const raw = [...up.rawHeaders];
      if (auth.viaPath) raw.push("Set-Cookie", `${this.cookie}=${this.token(req)}; Path=/; HttpOnly; SameSite=Lax`);
      res.writeHead(up.statusCode ?? 502, up.statusMessage, raw);
      // Headers first, then every chunk as it comes: Server-Sent Events and streamed bodies flow.
      res.flushHeaders();
      up.pipe(res);
      up.on("error", () => res.destroy());
    });
    upstream.on("error", (err) => {
      if (res.headersSent) return void res.destroy();
      res.writeHead(502, { "Content-Type": "text/plain", "X-Sbx-Error": `port ${this.port} inside the sandbox: ${err.message}`.slice(0, 500) }).end(`502: nothing answered on port ${this.port} inside the sandbox (${err.message})\n`);
    });
    req.pipe(upstream);
    res.on("close", () => upstream.destroy());
  }

  /** The token the request proved it holds by its path (only ever called after authorize said so). */
  private token(req: IncomingMessage): string {
    return /^\/([A-Za-z0-9_-]{32})/.exec(req.url ?? "")![1]!;
  }

  /** WebSocket and other upgrades: the request goes in as it came (minus our credential), then bytes both ways. */
  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on("error", () => {});
    const auth = this.authorize(req);
    if (!auth) return void socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n401: this URL needs the exposure's token\n");
    const tunnel = openTunnel(this.sb, this.port);
    const lines = [`${req.method} ${auth.path} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const lower = req.rawHeaders[i]!.toLowerCase();
      if (lower === "x-sbx-token") continue;
      if (lower === "cookie") {
        const rest = withoutCookie(req.rawHeaders[i + 1]!, this.cookie);
        if (rest) lines.push(`${req.rawHeaders[i]}: ${rest}`);
        continue;
      }
      lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    }
    tunnel.write(lines.join("\r\n") + "\r\n\r\n");
    if (head.length) tunnel.write(head);
    tunnel.on("error", () => socket.destroy());
    socket.on("close", () => tunnel.destroy());
    tunnel.pipe(socket);
    socket.pipe(tunnel);
  }
}

function cookieValue(header: string | undefined, name: string): string | null {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function withoutCookie(header: string, name: string): string {
  return header
    .split(";")
    .filter((part) => part.slice(0, part.indexOf("=")).trim() !== name)
    .join(";")
    .trim();
}

/** A sandbox's exposures; all closed when it ends. */
export class Exposures {
  private readonly open: Exposure[] = [];
  private closed = false;

  async add(sb: Sandbox, port: number, opts: { public: boolean; host: string; bind: string }): Promise<Exposure> {
    if (this.closed) throw new DaemonError("SandboxNotFound", `sandbox ${sb.id} has stopped`);
    // Exposing the bridge would hand whoever holds the URL the sandbox's way out (its allowNet).
    if (port === EGRESS_BRIDGE_PORT) throw new DaemonError("InvalidParams", `params.port: ${port} is the sandbox's way out (its bridge to the egress proxy) and cannot be exposed`);
    if (this.open.length >= MAX_EXPOSURES) throw new DaemonError("ResourceLimit", `sandbox ${sb.id} already exposes ${MAX_EXPOSURES} ports`);
    const exposure = await Exposure.open(sb, port, opts);
    if (this.closed) {
      exposure.close();
      throw new DaemonError("SandboxNotFound", `sandbox ${sb.id} has stopped`);
    }
    this.open.push(exposure);
    return exposure;
  }

  closeAll(): void {
    this.closed = true;
    for (const e of this.open.splice(0)) e.close();
  }
}
