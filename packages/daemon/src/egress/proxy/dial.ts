/**
 * How the proxy reaches what its policy allowed: straight to the vetted address, or, where the
 * operator's network only lets traffic out through an HTTP proxy of its own, through that proxy
 * with CONNECT. The policy is always decided first, here; the upstream proxy only carries what
 * sbx already allowed. By default the CONNECT names the vetted address (so a name cannot be
 * resolved again, elsewhere, to something sbx refused); `connectBy: "name"` sends the name for
 * proxies that filter by host name.
 */
import { Agent, type AgentOptions } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { connect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { hostPort } from "../policy/host.js";
import { canonicalIp, inPrefix, ipBytes, prefix, type Prefix } from "../policy/ip.js";

export interface UpstreamProxy {
  host: string;
  port: number;
  /** `user:password` from the URL, sent as Proxy-Authorization: Basic. */
  auth: string | null;
  /** Destinations reached directly: exact names, `.suffix` (or `suffix`) for a domain and its subdomains, CIDR blocks, `*`. */
  noProxy: readonly string[];
  connectBy: "address" | "name";
}

/** A connection being made: the socket now (so it can be tracked and cut), usable once `ready` resolves. */
export interface Dialled {
  socket: Socket;
  /** Resolves with any bytes the upstream sent past the proxy's answer; rejects if the connection fails. */
  ready: Promise<Buffer>;
}

/** The proxy's answer to a CONNECT is read up to this size. */
const MAX_PROXY_ANSWER = 16 * 1024;

/**
 * Reads `egress.upstreamProxy` (a URL, or { url, noProxy, connectBy }). Throws naming what is wrong.
 *
 * @example parseUpstreamProxy({ url: "http://user:pw@proxy.corp:3128", noProxy: [".corp", "10.0.0.0/8"] })
 */
export function parseUpstreamProxy(value: unknown, where = "config.egress.upstreamProxy"): UpstreamProxy {
  const spec = typeof value === "string" ? { url: value } : (value as Record<string, unknown>);
  if (!spec || typeof spec !== "object" || typeof spec.url !== "string") throw new Error(`${where}: must be a URL such as "http://proxy.corp:3128", or { url, noProxy, connectBy }`);
  for (const key of Object.keys(spec)) if (!["url", "noProxy", "connectBy"].includes(key)) throw new Error(`${where}: unknown key '${key}' (known: url, noProxy, connectBy)`);
  let url: URL;
  try {
    url = new URL(spec.url);
  } catch {
    throw new Error(`${where}.url: '${spec.url}' is not a URL such as http://proxy.corp:3128`);
  }
  if (url.protocol !== "http:") throw new Error(`${where}.url: only http:// proxies are supported (got ${url.protocol})`);
  const noProxy = spec.noProxy ?? [];
  if (!Array.isArray(noProxy) || noProxy.some((e) => typeof e !== "string" || !e)) throw new Error(`${where}.noProxy: must be an array of host names, .domains, CIDR blocks or "*"`);
  for (const entry of noProxy as string[]) if (entry.includes("/") && !cidr(entry)) throw new Error(`${where}.noProxy: '${entry}' is not a CIDR block`);
  const connectBy = spec.connectBy ?? "address";
  if (connectBy !== "address" && connectBy !== "name") throw new Error(`${where}.connectBy: must be "address" or "name"`);
  return {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port || 80),
    auth: url.username ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : null,
    noProxy: noProxy as string[],
    connectBy,
  };
}

/** The daemon's own HTTPS_PROXY / HTTP_PROXY and NO_PROXY, the way curl reads them; null when unset. */
export function upstreamFromEnvironment(env: NodeJS.ProcessEnv): UpstreamProxy | null {
  const url = env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy;
  if (!url) return null;
  const noProxy = (env.NO_PROXY || env.no_proxy || "").split(",").map((s) => s.trim()).filter(Boolean);
  return parseUpstreamProxy({ url: /^[a-z]+:\/\//i.test(url) ? url : `http://${url}`, noProxy }, "HTTPS_PROXY");
}

function cidr(entry: string): Prefix | null {
  const [addr = "", bits = ""] = entry.split("/");
  const bytes = ipBytes(addr);
  if (!bytes || !/^\d{1,3}$/.test(bits) || Number(bits) > bytes.length * 8) return null;
  return prefix(`${canonicalIp(addr)}/${bits}`);
}

/** Whether `name` (or the vetted `address`) is reached directly rather than through the proxy. */
export function bypasses(proxy: UpstreamProxy, name: string, address: string): boolean {
  return proxy.noProxy.some((entry) => {
    if (entry === "*") return true;
    const block = entry.includes("/") ? cidr(entry) : null;
    if (block) return inPrefix(ipBytes(address) ?? new Uint8Array(), block);
    const domain = entry.replace(/^\*?\./, "").toLowerCase();
    return name === domain || name.endsWith(`.${domain}`) || canonicalIp(entry) === address;
  });
}

/** Makes every upstream connection of one sandbox's proxy, direct or through the operator's proxy. */
export class Dialer {
  constructor(private readonly upstream: UpstreamProxy | null) {}

  /**
   * A TCP connection to `address:port`, which the policy allowed for `name`. `resolved`: the
   * address came from DNS, so an upstream proxy with `connectBy: "name"` may be sent the name
   * (a pinned or literal address is always sent as the address: that is where it must go).
   */
  dial(address: string, port: number, name: string, resolved = false): Dialled {
    const via = this.upstream && !bypasses(this.upstream, name, address) ? this.upstream : null;
    if (!via) {
      const socket = connect({ host: address, port });
      return { socket, ready: new Promise((resolve, reject) => socket.once("connect", () => resolve(Buffer.alloc(0))).once("error", reject)) };
    }
    const authority = hostPort(via.connectBy === "name" && resolved ? name : address, port);
    const socket = connect({ host: via.host, port: via.port });
    const ready = new Promise<Buffer>((resolve, reject) => {
      socket.once("error", reject);
      // (A no-op once it answered.)
      socket.once("close", () => reject(new Error(`the upstream proxy ${hostPort(via.host, via.port)} closed the connection without answering CONNECT ${authority}`)));
      socket.once("connect", () => {
        const auth = via.auth ? `Proxy-Authorization: Basic ${Buffer.from(via.auth).toString("base64")}\r\n` : "";
        socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth}\r\n`);
      });
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) {
          if (head.length > MAX_PROXY_ANSWER) fail(`the upstream proxy ${hostPort(via.host, via.port)} sent an answer longer than ${MAX_PROXY_ANSWER} bytes`);
          return;
        }
        socket.off("data", onData);
        const status = /^HTTP\/1\.[01] (\d{3})([^\r\n]*)/.exec(head.subarray(0, end).toString("latin1"));
        if (status?.[1] !== "200") return fail(`the upstream proxy ${hostPort(via.host, via.port)} refused CONNECT ${authority}: ${status ? `${status[1]}${status[2]}` : "not an HTTP answer"}`);
        socket.pause();
        resolve(head.subarray(end + 4));
      };
      const fail = (reason: string) => {
        socket.destroy();
        reject(new Error(reason));
      };
      socket.on("data", onData);
    });
    return { socket, ready };
  }

  /** A keep-alive agent whose connections come from {@link dial}: plain, or TLS over them. */
  agent(kind: "http" | "https", options: AgentOptions): Agent {
    const dialer = this;
    // `dialName`, `dialResolved`: the name the request is for (the host is the vetted address) and
    // whether DNS gave the address, passed through the request's options.
    const create = (opts: ConnectionOptions & { host?: string; port?: number; servername?: string; dialName?: string; dialResolved?: boolean }, done: (err: Error | null, socket?: Socket) => void) => {
      const { socket, ready } = dialer.dial(opts.host!, Number(opts.port), opts.dialName ?? opts.servername ?? opts.host!, opts.dialResolved ?? false);
      ready.then(
        (rest) => {
          if (rest.length) socket.unshift(rest);
          socket.resume();
          done(null, kind === "https" ? tlsConnect({ ...opts, socket }) : socket);
        },
        (err) => done(err),
      );
      return undefined;
    };
    const Base = kind === "https" ? HttpsAgent : Agent;
    const agent = new Base(options);
    const own = agent as unknown as { createConnection: typeof create; getName(o: object): string };
    own.createConnection = create;
    // Pooled connections are told apart by name too: one name may go through the upstream proxy and another to the same address not.
    const getName = own.getName.bind(agent);
    own.getName = (o: { dialName?: string; dialResolved?: boolean }) => `${getName(o)}:${o.dialName ?? ""}:${o.dialResolved ? "dns" : ""}`;
    return agent;
  }
}
