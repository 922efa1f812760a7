import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { localAddresses } from "./addresses.js";
import { AllowList } from "./allowlist.js";
import { TargetError } from "./errors.js";
import type { EgressJournal } from "./journal.js";
import { decideEgress, stillAllowed, type DecideOptions } from "./policy.js";
import { hostHeaderAgrees, parseAbsoluteUri, parseConnectTarget, sniAgrees, type Target } from "./target.js";

let hostAddresses: string[] = [];
let hostAddressesAt = 0;

/** Headers that describe one hop and must not be forwarded. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]);

interface OpenConnection {
  target: Target;
  dialled: { address: string; port: number; via: "literal" | "pin" | "dns" };
  sockets: Array<Socket | Duplex>;
}

/** A refusal the sandbox's program can read: status line, X-Sbx-Error header and a plain-text body. */
function refusal(status: 400 | 403 | 502, reason: string): string {
  const clean = reason.replace(/[\x00-\x1f\x7f]/g, " ").slice(0, 1000);
  const text = status === 400 ? "Bad Request" : status === 403 ? "Forbidden" : "Bad Gateway";
  const body = `sbx egress proxy: ${clean}\n`;
  return `HTTP/1.1 ${status} ${text}\r\nX-Sbx-Error: ${clean}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * One sandbox's egress proxy: the only way out of its network namespace. It listens on a
 * unix socket bound into the sandbox (the supervisor bridges 127.0.0.1:3128 inside to it),
 * decides every CONNECT and plain-HTTP request against the sandbox's allow-list, dials the
 * vetted address itself, and records each decision. Node's HTTP parser runs in strict mode,
 * so smuggling shapes (Content-Length with Transfer-Encoding, obs-fold, bad chunking) are
 * answered 400 and never forwarded.
 */
export class EgressProxy {
  private readonly server: Server;
  /** Plain-HTTP upstream connections are reused across a sandbox's requests, like any client's. */
  private readonly upstreamAgent = new Agent({ keepAlive: true, maxSockets: 64 });
  private allowList: AllowList;
  private readonly open = new Set<OpenConnection>();

  constructor(
    allowList: AllowList,
    private readonly journal: EgressJournal,
    private readonly decide: DecideOptions,
  ) {
    this.allowList = allowList;
    this.server = createServer({ insecureHTTPParser: false, requestTimeout: 60_000, maxHeaderSize: 32 * 1024 });
    this.server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.onConnect(req, socket, head));
    this.server.on("request", (req: IncomingMessage, res: ServerResponse) => void this.onRequest(req, res));
    this.server.on("clientError", (err: Error, socket: Duplex) => {
      if (socket.writable) socket.end(refusal(400, `malformed request: ${err.message}`));
      else socket.destroy();
    });
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
    this.server.close();
    this.server.closeAllConnections();
  }

  private async onConnect(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    client.on("error", () => {});
    let target: Target;
    try {
      target = parseConnectTarget(req.url ?? "");
    } catch (err) {
      return void client.end(refusal(400, err instanceof TargetError ? err.message : "bad CONNECT target"));
    }
    const decision = await decideEgress(target, this.allowList, this.options());
    this.journal.record({ host: target.host, port: target.port, method: "CONNECT", allowed: decision.allowed, ...(decision.allowed ? {} : { reason: decision.reason }) });
    if (!decision.allowed) return void client.end(refusal(decision.status, decision.reason));
    const upstream = connect({ host: decision.address, port: decision.port });
    let connected = false;
    const conn: OpenConnection = { target, dialled: decision, sockets: [client, upstream] };
    this.open.add(conn);
    const done = () => {
      this.open.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    upstream.once("error", (err) => {
      if (client.writable && !connected) client.end(refusal(502, `cannot reach ${target.host}:${target.port}: ${err.message}`));
      done();
    });
    upstream.once("connect", () => {
      connected = true;
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      // The first bytes decide: a TLS ClientHello's server name must agree with the CONNECT target.
      let first = head;
      const open = () => {
        if (first.length) {
          this.journal.bytesOut += first.length;
          upstream.write(first);
        }
        this.count(client, upstream);
        client.pipe(upstream);
        upstream.pipe(client);
      };
      const check = (): boolean => {
        const hello = tlsServerName(first);
        if (hello === "more") return false;
        if (hello === "bad" || (hello !== "not-tls" && !sniAgrees(hello ?? undefined, target))) {
          const reason =
            hello === "bad"
              ? `a malformed TLS ClientHello was sent toward ${target.host}:${target.port}`
              : `the TLS server name '${String(hello).slice(0, 200)}' disagrees with the CONNECT target ${target.host}:${target.port}`;
          this.journal.record({ host: target.host, port: target.port, method: "TLS", allowed: false, reason });
          done();
          return true;
        }
        open();
        return true;
      };
      if (first.length && check()) return;
      const gate = (chunk: Buffer) => {
        first = Buffer.concat([first, chunk]);
        if (check()) client.off("data", gate);
      };
      client.on("data", gate);
    });
    client.once("close", done);
    upstream.once("close", done);
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reject = (status: 400 | 403 | 502, reason: string) => {
      res.socket?.end(refusal(status, reason));
    };
    let target: ReturnType<typeof parseAbsoluteUri>;
    try {
      target = parseAbsoluteUri(req.url ?? "");
    } catch (err) {
      return reject(400, err instanceof TargetError ? err.message : "a proxy request needs an absolute http:// URI");
    }
    if (target.scheme !== "http") return reject(400, "use CONNECT for https:// through this proxy");
    if (req.headers.host !== undefined && !hostHeaderAgrees(req.headers.host, target, 80)) {
      return reject(400, `the Host header '${req.headers.host.slice(0, 200)}' disagrees with the request target ${target.host}:${target.port}`);
    }
    const decision = await decideEgress(target, this.allowList, this.options());
    this.journal.record({ host: target.host, port: target.port, method: req.method ?? "GET", allowed: decision.allowed, ...(decision.allowed ? {} : { reason: decision.reason }) });
    if (!decision.allowed) return reject(decision.status, decision.reason);

    const headers: Record<string, string | string[]> = {};
    const listed = connectionOptions(req.headers.connection);
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name) && !listed.has(name)) headers[name] = value;
    const upstream = httpRequest({ host: decision.address, port: decision.port, method: req.method, path: target.path, headers, setHost: false, agent: this.upstreamAgent });
    const conn: OpenConnection = { target, dialled: decision, sockets: [req.socket, upstream as unknown as Duplex] };
    this.open.add(conn);
    const done = () => this.open.delete(conn);
    // The client went away or its request turned out malformed mid-body: the upstream request is cut, not left hanging.
    res.once("close", () => {
      if (!res.writableFinished) upstream.destroy();
      done();
    });
    upstream.on("response", (up) => {
      const out: Record<string, string | string[]> = {};
      const upListed = connectionOptions(up.headers.connection);
      for (const [name, value] of Object.entries(up.headers)) if (value !== undefined && !HOP_BY_HOP.has(name) && !upListed.has(name)) out[name] = value;
      res.writeHead(up.statusCode ?? 502, up.statusMessage, out);
      up.on("data", (chunk: Buffer) => (this.journal.bytesIn += chunk.length));
      up.pipe(res);
      up.once("end", done);
    });
    upstream.on("error", (err) => {
      done();
      if (res.socket?.destroyed || res.socket?.writableEnded) return;
      if (!res.headersSent) reject(502, `cannot reach ${target.host}:${target.port}: ${err.message}`);
      else res.destroy();
    });
    req.on("data", (chunk: Buffer) => (this.journal.bytesOut += chunk.length));
    req.pipe(upstream);
  }

  /** The decision options with this host's own addresses, re-read at most once a second. */
  private options(): DecideOptions {
    const now = Date.now();
    if (now - hostAddressesAt > 1000) {
      hostAddresses = localAddresses();
      hostAddressesAt = now;
    }
    return { ...this.decide, hostAddresses };
  }

  private count(client: Duplex, upstream: Socket): void {
    client.on("data", (chunk: Buffer) => (this.journal.bytesOut += chunk.length));
    upstream.on("data", (chunk: Buffer) => (this.journal.bytesIn += chunk.length));
  }
}

/** The header names a Connection header lists (RFC 9110 §7.6.1): hop-by-hop too, never forwarded. */
function connectionOptions(value: string | string[] | undefined): Set<string> {
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  return new Set(text.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean));
}

/**
 * The server name of a TLS ClientHello at the start of `buf`: the name, null for a ClientHello
 * without SNI, "more" if the record is not complete yet, "not-tls" if the tunnel does not start
 * with a TLS handshake, "bad" for a handshake record that cannot be read (refused, never passed).
 */
function tlsServerName(buf: Buffer): string | null | "more" | "not-tls" | "bad" {
  if (buf.length < 1) return "more";
  if (buf[0] !== 0x16) return "not-tls";
  if (buf.length < 5) return "more";
  const recordLength = buf.readUInt16BE(3);
  if (recordLength > 16384) return "bad";
  if (buf.length < 5 + recordLength) return "more";
  const hello = buf.subarray(5, 5 + recordLength);
  try {
    if (hello[0] !== 0x01) return "bad";
    let p = 4 + 2 + 32; // handshake header, client_version, random
    p += 1 + hello[p]!; // session id
    p += 2 + hello.readUInt16BE(p); // cipher suites
    p += 1 + hello[p]!; // compression methods
    if (p >= hello.length) return null;
    const end = p + 2 + hello.readUInt16BE(p);
    p += 2;
    while (p + 4 <= end) {
      const type = hello.readUInt16BE(p);
      const len = hello.readUInt16BE(p + 2);
      if (type === 0) {
        const nameLength = hello.readUInt16BE(p + 4 + 3);
        return hello.subarray(p + 4 + 5, p + 4 + 5 + nameLength).toString("latin1");
      }
      p += 4 + len;
    }
    return null;
  } catch {
    return "bad";
  }
}
