/**
 * HTTP/1.1 pieces the egress proxy shares: its refusals (a status, an X-Sbx-Error header and the
 * same reason as plain text) and raw-header helpers (hop-by-hop fields, exactly one Host, the
 * object form node:http wants, content codings).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { hostPort } from "../policy/host.js";
import type { Destination } from "../secrets/secrets.js";

/** Headers that describe one hop and must not be forwarded. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]);
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

export function without(raw: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (!names.includes(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

export function get(raw: readonly string[], name: string): string | undefined {
  const values: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  return values.length ? values.join(", ") : undefined;
}

/**
 * The request's headers with exactly one Host: the one the proxy checked against the target
 * (Node keeps the first of several), or the target's authority. A second Host header must never
 * reach an upstream that might route by it, with a secret substituted into the request.
 */
export function oneHost(raw: readonly string[], req: IncomingMessage, to: Destination): string[] {
  const host = req.headers.host ?? hostPort(to.host, to.port);
  return ["Host", host, ...without(raw, ["host"])];
}

/** Raw pairs as the object node:http wants (repeated names as arrays, Set-Cookie included). */
export function toHeaders(raw: readonly string[]): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const prev = out[name];
    out[name] = prev === undefined ? raw[i + 1]! : [...(Array.isArray(prev) ? prev : [prev]), raw[i + 1]!];
  }
  return out;
}

/** Content codings, outermost last (RFC 9110 §8.4), lower-cased; identity dropped. */
export function codings(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim().toLowerCase()).filter((s) => s && s !== "identity");
}
