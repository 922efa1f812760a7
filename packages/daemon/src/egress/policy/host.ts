/**
 * Reading `host[:port]` the way HTTP clients do. Names are canonicalised by the WHATWG URL
 * parser (lower case, IDNA to punycode, `127.1` and `0x7f.0.0.1` to dotted quads), so the
 * proxy judges the same host the client meant; then held to stricter rules than the
 * parser's (letters, digits, `-` and `_` only), since a real host name needs nothing else.
 */
import { Malformed } from "./errors.js";
import { canonicalIp, isDottedQuad } from "./ip.js";

/** What kind of host a canonical host string is. */
export type HostKind = "name" | "ipv4" | "ipv6";

/** A canonical host: a lower-case punycode name without trailing dot, or an IP (IPv6 without brackets). */
export interface Host {
  readonly name: string;
  readonly kind: HostKind;
}

/** Refuses characters that never belong in an authority, each with its own reason. */
export function checkAuthorityText(text: string): void {
  if (text.length === 0) throw new Malformed("is empty");
  if (text.includes("\0")) throw new Malformed("contains a NUL byte");
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(text);
  if (scheme) throw new Malformed(`has a scheme; write the host alone, as in ${JSON.stringify(scheme[1])}`);
  if (text.includes("%")) throw new Malformed("contains '%': percent-encoded bytes are not allowed in a host");
  if (/[\s\p{Cc}\p{Cf}]/u.test(text)) throw new Malformed("contains whitespace or an invisible or control character");
  if (text.includes("@")) throw new Malformed("contains '@': user names and passwords are not allowed");
  if (/[/?#\\]/.test(text)) throw new Malformed("contains a path, query or fragment ('/', '?', '#' or '\\'); write the host alone");
}

/** Splits `host`, `host:port`, `[v6]` or `[v6]:port`; the port is returned unparsed. */
export function splitHostPort(text: string): { host: string; port: string | null } {
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0) throw new Malformed("has '[' without a closing ']'");
    const rest = text.slice(end + 1);
    if (rest !== "" && !rest.startsWith(":")) throw new Malformed("has characters after ']' that are not a port");
    return { host: text.slice(0, end + 1), port: rest === "" ? null : rest.slice(1) };
  }
  const colon = text.lastIndexOf(":");
  if (colon < 0) return { host: text, port: null };
  const host = text.slice(0, colon);
  if (host.includes(":")) throw new Malformed("looks like an IPv6 address without brackets; write it as [address] or [address]:port");
  return { host, port: text.slice(colon + 1) };
}

/** A TCP port from 1 to 65535, written in decimal digits. */
export function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new Malformed(`has port ${JSON.stringify(text)}, which is not a number from 1 to 65535`);
  return port;
}

/**
 * Canonicalises a host as a client would read it. IPv4-mapped IPv6 (`[::ffff:127.0.0.1]`)
 * comes back as the IPv4 address it reaches. Callers must run {@link checkAuthorityText} first.
 */
export function canonicalHost(text: string): Host {
  if (text === "") throw new Malformed("has an empty host");
  if (text.startsWith("[")) {
    const ip = text.endsWith("]") ? canonicalIp(text.slice(1, -1)) : null;
    if (ip === null || !text.includes(":")) throw new Malformed(`has ${text}, which is not a valid IPv6 address`);
    return { name: ip, kind: ip.includes(":") ? "ipv6" : "ipv4" };
  }
  if (text.includes("[") || text.includes("]")) throw new Malformed("has '[' or ']' outside an IPv6 address");
  let parsed: string;
  try {
    parsed = new URL(`http://${text}/`).hostname;
  } catch {
    throw new Malformed(`has ${JSON.stringify(text)}, which is neither a valid host name nor an IPv4 address`);
  }
  if (isDottedQuad(parsed)) return { name: parsed, kind: "ipv4" };
  const name = parsed.endsWith(".") ? parsed.slice(0, -1) : parsed;
  checkName(name);
  return { name, kind: "name" };
}

function checkName(name: string): void {
  if (name.length > 253) throw new Malformed("has a host name longer than 253 characters");
  for (const label of name.split(".")) {
    if (label === "") throw new Malformed("has an empty label in its host name ('..', or a leading or doubled trailing dot)");
    if (label.length > 63) throw new Malformed("has a label longer than 63 characters in its host name");
    if (!/^[a-z0-9_-]+$/.test(label)) throw new Malformed(`has a character not allowed in a host name in ${JSON.stringify(label)}`);
  }
}

/** `host:port` as a URL writes it: an IPv6 address in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
