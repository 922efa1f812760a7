/**
 * Forwarding one HTTP request the proxy can read: a plain-HTTP proxy request, or a request on
 * a TLS connection the proxy intercepted for a secret's host. Where the sandbox holds
 * secrets, this is where placeholders become values (or block the request) on the way out
 * and values become placeholders again on the way back.
 */
import { request as httpRequest, type Agent as HttpAgent, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { request as httpsRequest, type Agent as HttpsAgent, type RequestOptions as HttpsRequestOptions } from "node:https";
import { connect as tlsConnect, type SecureContext } from "node:tls";
import { pipeline, Transform, Writable, type Duplex } from "node:stream";
import { pipeline as pipelineAsync } from "node:stream/promises";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { PLACEHOLDER_LENGTH, SecretBlocked, type Destination, type SecretSet } from "./secrets.js";
import { hostPort } from "./host.js";
import { decodeSlot, type SandboxEgressBudgets } from "./limits.js";

/** Headers that describe one hop and must not be forwarded. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]);
/** Encodings the proxy can read (always as streams, on libuv's threads: never on the daemon's own). */
const CODINGS: Record<string, () => Transform> = {
  gzip: createGunzip,
  "x-gzip": createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};
const READABLE_ENCODINGS = new Set([...Object.keys(CODINGS), "identity"]);
/** Content codings the proxy unwraps in one body; more are refused (a stack of hundreds once froze the daemon). */
export const MAX_CODINGS = 4;
/** A compressed request body is read whole to look for placeholders: at most this much of it, and this much decoded. */
const MAX_COMPRESSED_BODY = 16 * 1024 * 1024;
const MAX_DECODED_BODY = 64 * 1024 * 1024;
/** A response body of known length up to this size is scrubbed whole and keeps a Content-Length; larger ones stream. */
const WHOLE_RESPONSE = 1024 * 1024;

export type RefusalStatus = 400 | 403 | 413 | 415 | 502 | 503;
const STATUS_TEXT: Record<RefusalStatus, string> = { 400: "Bad Request", 403: "Forbidden", 413: "Content Too Large", 415: "Unsupported Media Type", 502: "Bad Gateway", 503: "Service Unavailable" };

/** A refusal's header fields and body: an X-Sbx-Error naming the reason, the same as plain text, and Connection: close. */
function refusalParts(reason: string): { headers: Record<string, string>; body: string } {
  const clean = reason.replace(/[\x00-\x1f\x7f]/g, " ").slice(0, 1000);
  const body = `sbx egress proxy: ${clean}\n`;
  return { headers: { "X-Sbx-Error": clean, "Content-Type": "text/plain; charset=utf-8", "Content-Length": String(Buffer.byteLength(body)), Connection: "close" }, body };
}

/** A refusal as raw bytes, for a socket that is no HTTP response (a CONNECT, an upgrade, a malformed request). */
export function refusal(status: RefusalStatus, reason: string): string {
  const { headers, body } = refusalParts(reason);
  return `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n${body}`;
}

/**
 * Answers `res` with a refusal, through the response itself: a pipelined request's response has
 * no socket yet, and one written past it would never finish. Once headers went out, it is cut.
 */
export function refuse(res: ServerResponse, status: RefusalStatus, reason: string): void {
  if (res.headersSent) return void res.destroy();
  const { headers, body } = refusalParts(reason);
  res.writeHead(status, STATUS_TEXT[status], headers);
  res.end(body);
}

/** The header names a Connection header lists (RFC 9110 §7.6.1): hop-by-hop too, never forwarded. */
export function connectionOptions(value: string | string[] | undefined): Set<string> {
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  return new Set(text.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean));
}

/** Raw header pairs without the hop-by-hop ones (and those the Connection header names). */
export function endToEnd(raw: readonly string[], connection: string | string[] | undefined): string[] {
  const listed = connectionOptions(connection);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name) && !listed.has(name)) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

function without(raw: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (!names.includes(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

function get(raw: readonly string[], name: string): string | undefined {
  const values: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  return values.length ? values.join(", ") : undefined;
}

/**
 * The request's headers with exactly one Host: the one the proxy checked against the target
 * (Node keeps the first of several), or the target's authority. A second Host header must never
 * reach an upstream that might route by it, with a secret substituted into the request.
 */
function oneHost(raw: readonly string[], req: IncomingMessage, to: Destination): string[] {
  const host = req.headers.host ?? hostPort(to.host, to.port);
  return ["Host", host, ...without(raw, ["host"])];
}

/** Raw pairs as the object node:http wants (repeated names as arrays, Set-Cookie included). */
function toHeaders(raw: readonly string[]): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const prev = out[name];
    out[name] = prev === undefined ? raw[i + 1]! : [...(Array.isArray(prev) ? prev : [prev]), raw[i + 1]!];
  }
  return out;
}

/** Content codings, outermost last (RFC 9110 §8.4), lower-cased; identity dropped. */
function codings(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim().toLowerCase()).filter((s) => s && s !== "identity");
}

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
}

/** What {@link forward} reports back to the proxy. */
export interface ForwardHooks {
  secrets: SecretSet;
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

  const options = { host: route.address, port: route.port, method: req.method, path: route.path, headers: toHeaders(headers), setHost: false, agent: route.agent };
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

const decoder = (coding: string): Transform => CODINGS[coding]!();

/** Accept-Encoding restricted to codings the proxy can decode (what the client asked for, in its order). */
function readableAccept(value: string): string {
  const kept = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => READABLE_ENCODINGS.has(s.split(";")[0]!.trim().toLowerCase()));
  return kept.length ? kept.join(", ") : "identity";
}

/** A request body the proxy will not forward, with the status that says why. */
class BodyRefused extends Error {
  constructor(readonly status: RefusalStatus, message: string) {
    super(message);
  }
}

/**
 * Reads a compressed request body, holding it (it goes on as it came) while it is decoded as
 * a stream and searched for placeholders; any placeholder refuses the request. Bounded
 * everywhere: at most {@link MAX_CODINGS} codings, {@link MAX_COMPRESSED_BODY} held (drawn from
 * the sandbox's and the daemon's held-bytes budgets), {@link MAX_DECODED_BODY} decoded, and one
 * decode per sandbox at a time in a small daemon-wide pool. The request stream is never
 * destroyed, so the refusal still reaches the client.
 */
async function readCompressed(req: IncomingMessage, encoded: string[], secrets: SecretSet, to: Destination, budgets: SandboxEgressBudgets): Promise<{ body: Buffer; release: () => void }> {
  // Nothing may flow (and be lost) while this waits for its turn to decode.
  req.pause();
  const where = hostPort(to.host, to.port);
  if (encoded.length > MAX_CODINGS) return refuseAfterBody(req, new BodyRefused(415, `a request body to ${where} has ${encoded.length} content codings; the proxy reads at most ${MAX_CODINGS} to look for secrets`));
  const unknown = encoded.find((c) => !CODINGS[c]);
  if (unknown) return refuseAfterBody(req, new BodyRefused(415, `a request body in content-encoding '${unknown.slice(0, 40)}' cannot be inspected for secrets, so it is refused`));
  const chunks: Buffer[] = [];
  let size = 0;
  const release = () => {
    budgets.held.give(size);
    size = 0;
  };
  const hold = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (size + chunk.length > MAX_COMPRESSED_BODY) return done(new BodyRefused(413, `a compressed request body to ${where} is over ${MAX_COMPRESSED_BODY / 1048576} MiB; the proxy reads such bodies whole to look for secrets`));
      if (!budgets.held.take(chunk.length)) return done(new BodyRefused(503, `the proxy already holds as many request bodies of this sandbox as it may (${budgets.held.limit / 1048576} MiB, or the daemon's limit); try again`));
      size += chunk.length;
      chunks.push(chunk);
      done(null, chunk);
    },
  });
  let decoded = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      decoded += chunk.length;
      if (decoded > MAX_DECODED_BODY) return done(new BodyRefused(413, `a compressed request body to ${where} decodes to over ${MAX_DECODED_BODY / 1048576} MiB; the proxy refuses it rather than look through all of it`));
      done(null, chunk);
    },
  });
  const free = await decodeSlot(budgets);
  req.pipe(hold);
  try {
    await pipelineAsync([hold, ...[...encoded].reverse().map(decoder), count, placeholderScanner(secrets, where)]);
  } catch (err) {
    release();
    free();
    req.unpipe(hold);
    if (err instanceof SecretBlocked || err instanceof BodyRefused) return refuseAfterBody(req, err);
    return refuseAfterBody(req, new BodyRefused(400, `a request body in content-encoding '${encoded.join(", ")}' to ${where} cannot be decoded to look for secrets (${(err as Error).message}), so it is refused`));
  }
  free();
  return { body: Buffer.concat(chunks), release };
}

/**
 * Rejects with `err` once the rest of the request body has been read and dropped (at most
 * 32 MiB, for at most 10 s): the refusal closes the connection, and a client still sending
 * into a closed socket gets a reset instead of the answer.
 */
async function refuseAfterBody(req: IncomingMessage, err: Error): Promise<never> {
  if (!req.complete) {
    await new Promise<void>((resolve) => {
      let dropped = 0;
      const timer = setTimeout(resolve, 10_000);
      timer.unref();
      const done = () => (clearTimeout(timer), resolve());
      req.on("data", (chunk: Buffer) => {
        dropped += chunk.length;
        if (dropped > 32 << 20) done();
      });
      req.once("end", done);
      req.once("close", done);
      req.resume();
    });
  }
  throw err;
}

/** A sink that fails with {@link SecretBlocked} at the first placeholder of the sandbox in what it is written, across chunk boundaries. */
function placeholderScanner(secrets: SecretSet, where: string): Writable {
  let tail = "";
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = tail + chunk.toString("latin1");
      const found = secrets.find(text)[0];
      if (found) return done(new SecretBlocked(found.name, `secret ${found.name} is in a compressed request body to ${where}; compressed bodies are never substituted, send it uncompressed`));
      tail = text.slice(-(PLACEHOLDER_LENGTH - 1));
      done();
    },
  });
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
  const upstream = tlsConnect({ host: route.address, port: route.port, servername: to.host, secureContext: route.trust, ALPNProtocols: ["http/1.1"] });
  hooks.opened(upstream);
  const close = () => {
    client.destroy();
    upstream.destroy();
    hooks.closed();
  };
  upstream.once("error", (err) => {
    if (client.writable) refuse(502, `cannot reach ${hostPort(to.host, to.port)}: ${err.message}`);
    close();
  });
  upstream.once("secureConnect", () => {
    const lines = [`${req.method} ${route.path} HTTP/1.1`];
    const headers = oneHost(req.rawHeaders, req, to);
    for (let i = 0; i + 1 < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
    upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (head.length) upstream.write(head);
    const scrubber = secrets.scrubber();
    client.on("data", (chunk: Buffer) => hooks.bytesOut(chunk.length));
    upstream.on("data", (chunk: Buffer) => hooks.bytesIn(chunk.length));
    client.pipe(upstream);
    upstream.pipe(scrubber).pipe(client);
    scrubber.on("error", close);
  });
  client.on("error", close);
  client.once("close", close);
  upstream.once("close", close);
}
