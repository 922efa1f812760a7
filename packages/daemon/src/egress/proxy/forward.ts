/**
 * Forwarding one HTTP request the proxy can read: a plain-HTTP proxy request, or a request on
 * a TLS connection the proxy intercepted for a secret's host. Where the sandbox holds
 * secrets, this is where placeholders become values (or block the request) on the way out
 * and values become placeholders again on the way back.
 */
import { request as httpRequest, type Agent as HttpAgent, type IncomingMessage, type ServerResponse } from "node:http";
import { request as httpsRequest, type Agent as HttpsAgent, type RequestOptions as HttpsRequestOptions } from "node:https";
import { connect as tlsConnect, type SecureContext } from "node:tls";
import { pipeline, type Duplex, type Transform } from "node:stream";
import { SecretBlocked, type Destination, type SecretSet } from "../secrets/secrets.js";
import { hostPort } from "../policy/host.js";
import type { SandboxEgressBudgets } from "./limits.js";
import { codings, endToEnd, get, oneHost, refusal, refuse, toHeaders, without } from "./http.js";
import { BodyRefused, decoder, MAX_CODINGS, READABLE_ENCODINGS, readCompressed } from "./bodies.js";
import type { Dialer } from "./dial.js";

/** A response body of known length up to this size is scrubbed whole and keeps a Content-Length; larger ones stream. */
const WHOLE_RESPONSE = 1024 * 1024;

/** Where a readable request goes, and what the proxy knows about it. */
export interface Route {
  to: Destination;
  /** The vetted address and port to dial. */
  address: string;
  port: number;
  /** The origin-form target to ask for. */
  path: string;
  agent: HttpAgent | HttpsAgent;
  /** For https: what the upstream's certificate is verified against. */
  trust?: SecureContext;
  /** The address came from DNS (not a pin or a literal). */
  resolved: boolean;
}

/** What {@link forward} reports back to the proxy. */
export interface ForwardHooks {
  secrets: SecretSet;
  /** Where upstream connections come from (directly, or through the operator's upstream proxy). */
  dialer: Dialer;
  /** What this sandbox may make the proxy hold and decode. */
  budgets: SandboxEgressBudgets;
  /** A request blocked for a secret: counted, logged and answered 403 by the caller's journal. */
  blocked(err: SecretBlocked): void;
  bytesOut(n: number): void;
  bytesIn(n: number): void;
  /** The upstream request, so the proxy can cut it when allowNet changes. */
  opened(upstream: Duplex): void;
  closed(): void;
  /** A failure of the proxy's own (the connection is closed); for the daemon's log. */
  failed(err: unknown): void;
}

/**
 * Forwards `req` along `route`, answering on `res`. With secrets: the URL and headers are
 * checked and rewritten before anything is sent, the body passes through an inspector that
 * substitutes or blocks, a compressed body is read whole and refused if it carries a
 * placeholder, and the response's headers and body are scrubbed of every value.
 */
export function forward(req: IncomingMessage, res: ServerResponse, route: Route, hooks: ForwardHooks): void {
  const { secrets } = hooks;
  const { to } = route;
  const block = (err: SecretBlocked) => {
    hooks.blocked(err);
    refuse(res, 403, err.message);
  };

  let headers = oneHost(endToEnd(req.rawHeaders, req.headers.connection), req, to);
  const chunked = codings(req.headers["transfer-encoding"]).includes("chunked");
  const hasBody = chunked || Number(req.headers["content-length"] ?? 0) > 0;
  const encoded = codings(req.headers["content-encoding"]);
  let inspector: Transform | null = null;
  if (!secrets.empty) {
    const inUrl = secrets.checkUrl(route.path, to);
    if (inUrl) return block(inUrl);
    try {
      headers = secrets.rewriteHeaders(headers, to);
    } catch (err) {
      if (err instanceof SecretBlocked) return block(err);
      throw err;
    }
    // A part of a response can hold a piece of a value too short to be recognised, so a host a
    // secret is bound to is asked for whole responses only (a 206 it sends anyway is refused).
    if (secrets.boundTo(to.host)) headers = without(headers, ["range", "if-range"]);
    // Only codings the proxy can read come back, so every response can be scrubbed.
    const accept = get(headers, "accept-encoding");
    if (accept !== undefined) headers = [...without(headers, ["accept-encoding"]), "Accept-Encoding", readableAccept(accept)];
    if (hasBody && encoded.length === 0) {
      inspector = secrets.bodyInspector(to);
      if (secrets.substitutesBody(to)) headers = without(headers, ["content-length"]);
    }
  }
  // Framing is this hop's: a body without a known length goes on chunked, whatever the method.
  if (hasBody && get(headers, "content-length") === undefined) headers.push("Transfer-Encoding", "chunked");

  // dialName: the name the vetted address was allowed for (the dialer's upstream-proxy rules match names).
  const options = { host: route.address, port: route.port, method: req.method, path: route.path, headers: toHeaders(headers), setHost: false, agent: route.agent, dialName: to.host, dialResolved: route.resolved };
  const upstream =
    to.scheme === "https"
      ? httpsRequest({ ...options, servername: to.host, secureContext: route.trust, ALPNProtocols: ["http/1.1"] } as HttpsRequestOptions)
      : httpRequest(options);
  hooks.opened(upstream as unknown as Duplex);
  let finished = false;
  const done = () => {
    if (!finished) hooks.closed();
    finished = true;
  };
  // The client went away or its request turned out malformed mid-body: the upstream request is cut, not left hanging.
  res.once("close", () => {
    if (!res.writableFinished) upstream.destroy();
    done();
  });
  const cut = () => upstream.destroy();
  upstream.on("response", (up) => {
    try {
      respond(up, res, req.method ?? "GET", to, secrets, hooks, cut);
    } catch (err) {
      cut();
      res.destroy();
      hooks.failed(err);
    }
  });
  upstream.once("close", done);
  upstream.on("error", (err) => {
    done();
    if (res.destroyed || res.writableEnded) return;
    refuse(res, 502, `cannot reach ${hostPort(to.host, to.port)}: ${err.message}`);
  });
  req.on("data", (chunk: Buffer) => hooks.bytesOut(chunk.length));

  if (!secrets.empty && hasBody && encoded.length > 0) {
    readCompressed(req, encoded, secrets, to, hooks.budgets).then(
      ({ body, release }) => upstream.end(body, release),
      (err) => {
        upstream.destroy();
        if (err instanceof SecretBlocked) block(err);
        else if (err instanceof BodyRefused) refuse(res, err.status, err.message);
        else {
          res.destroy();
          hooks.failed(err);
        }
      },
    );
    return;
  }
  if (!inspector) return void req.pipe(upstream);
  inspector.on("error", (err) => {
    // Nothing after the placeholder reaches the upstream, and the request it got is never completed.
    upstream.destroy();
    req.unpipe(inspector!);
    if (err instanceof SecretBlocked) block(err);
    else res.destroy();
  });
  req.pipe(inspector).pipe(upstream);
}

/** Sends the upstream's response back, scrubbed of every secret value where the sandbox holds any. */
function respond(up: IncomingMessage, res: ServerResponse, method: string, to: Destination, secrets: SecretSet, hooks: ForwardHooks, cut: () => void): void {
  let headers = endToEnd(up.rawHeaders, up.headers.connection);
  up.on("data", (chunk: Buffer) => hooks.bytesIn(chunk.length));
  const status = up.statusCode ?? 502;
  if (secrets.empty) {
    res.writeHead(status, up.statusMessage, toHeaders(headers));
    up.pipe(res);
    return;
  }
  if (status === 206 && secrets.boundTo(to.host)) {
    cut();
    refuse(res, 502, `the response from ${hostPort(to.host, to.port)} is partial content (206), which could carry a piece of a secret's value too short to scrub; the proxy asks the hosts secrets are bound to for whole responses only`);
    return;
  }
  for (let i = 1; i < headers.length; i += 2) headers[i] = secrets.scrubText(headers[i]!);
  const bodyless = method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200);
  if (bodyless) {
    res.writeHead(status, secrets.scrubText(up.statusMessage ?? ""), toHeaders(headers));
    up.pipe(res);
    return;
  }
  const encoded = codings(up.headers["content-encoding"]);
  const unreadable = encoded.find((c) => !READABLE_ENCODINGS.has(c));
  if (encoded.length > MAX_CODINGS) {
    cut();
    refuse(res, 502, `the response from ${hostPort(to.host, to.port)} has ${encoded.length} content codings; the proxy unwraps at most ${MAX_CODINGS} to scrub secrets from it`);
    return;
  }
  if (unreadable) {
    cut();
    refuse(res, 502, `the response from ${hostPort(to.host, to.port)} is in content-encoding '${unreadable.slice(0, 40)}', which the proxy cannot read to scrub secrets from`);
    return;
  }
  const fail = () => {
    cut();
    res.destroy();
  };
  const length = Number(up.headers["content-length"] ?? NaN);
  // Small and plain: read whole (if the sandbox's held-bytes budget has room), scrubbed at once, and sent with its (new) length.
  if (encoded.length === 0 && length <= WHOLE_RESPONSE && hooks.budgets.held.take(length)) {
    const chunks: Buffer[] = [];
    let held = 0;
    up.on("data", (chunk: Buffer) => {
      held += chunk.length;
      // A server that sends more than it announced is cut off before the proxy holds it.
      if (held > length) return fail();
      chunks.push(chunk);
    });
    up.once("close", () => hooks.budgets.held.give(length));
    up.once("error", fail);
    up.once("end", () => {
      try {
        const body = secrets.scrubBytes(Buffer.concat(chunks));
        res.writeHead(status, secrets.scrubText(up.statusMessage ?? ""), toHeaders([...without(headers, ["content-length"]), "Content-Length", String(body.length)]));
        res.end(body);
      } catch (err) {
        fail();
        hooks.failed(err);
      }
    });
    return;
  }
  // The body is decoded, scrubbed and sent as it then is: its length may change, so it goes chunked.
  headers = without(headers, ["content-length", ...(encoded.length ? ["content-encoding"] : [])]);
  res.writeHead(status, secrets.scrubText(up.statusMessage ?? ""), toHeaders(headers));
  // pipeline: an error anywhere (a corrupt coding in any decoder of the chain) ends all of it, never the daemon.
  pipeline([up, ...[...encoded].reverse().map(decoder), secrets.scrubber(), res], (err) => {
    if (err) fail();
  });
}

/** Accept-Encoding restricted to codings the proxy can decode (what the client asked for, in its order). */
function readableAccept(value: string): string {
  const kept = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => READABLE_ENCODINGS.has(s.split(";")[0]!.trim().toLowerCase()));
  return kept.length ? kept.join(", ") : "identity";
}

/**
 * A WebSocket upgrade on an intercepted connection: refused if it carries any placeholder
 * (nothing in it is substituted), otherwise passed to the upstream, whose bytes are scrubbed.
 */
export function forwardUpgrade(req: IncomingMessage, client: Duplex, head: Buffer, route: Route, hooks: ForwardHooks): void {
  const { secrets } = hooks;
  const { to } = route;
  const refuse = (status: 400 | 403 | 502, reason: string) => void client.end(refusal(status, reason));
  if ((req.headers.upgrade ?? "").trim().toLowerCase() !== "websocket") {
    return refuse(400, `only WebSocket upgrades pass the intercepted connection to ${hostPort(to.host, to.port)}`);
  }
  const carried = secrets.carried(req.url ?? "", req.rawHeaders);
  if (carried) {
    const err = new SecretBlocked(carried.name, `secret ${carried.name} is in a WebSocket upgrade to ${hostPort(to.host, to.port)}; secrets are never substituted in WebSocket upgrades`);
    hooks.blocked(err);
    return refuse(403, err.message);
  }
  const { socket, ready } = hooks.dialer.dial(route.address, route.port, to.host, route.resolved);
  hooks.opened(socket);
  let upstream: Duplex | null = null;
  const close = () => {
    client.destroy();
    socket.destroy();
    upstream?.destroy();
    hooks.closed();
  };
  const unreachable = (err: Error) => {
    if (client.writable) refuse(502, `cannot reach ${hostPort(to.host, to.port)}: ${err.message}`);
    close();
  };
  socket.on("error", () => {});
  client.on("error", close);
  client.once("close", close);
  socket.once("close", close);
  // TLS starts only once the connection is through (an upstream proxy answers its CONNECT first).
  ready.then((rest) => {
    if (rest.length) socket.unshift(rest);
    socket.resume();
    const tls = tlsConnect({ socket, servername: to.host, secureContext: route.trust, ALPNProtocols: ["http/1.1"] });
    upstream = tls;
    tls.once("error", unreachable);
    tls.once("secureConnect", () => {
      const lines = [`${req.method} ${route.path} HTTP/1.1`];
      const headers = oneHost(req.rawHeaders, req, to);
      for (let i = 0; i + 1 < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
      tls.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (head.length) tls.write(head);
      const scrubber = secrets.scrubber();
      client.on("data", (chunk: Buffer) => hooks.bytesOut(chunk.length));
      tls.on("data", (chunk: Buffer) => hooks.bytesIn(chunk.length));
      client.pipe(tls);
      tls.pipe(scrubber).pipe(client);
      scrubber.on("error", close);
    });
  }, unreachable);
}
