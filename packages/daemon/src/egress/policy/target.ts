/**
 * The host and port a proxied request is for, read from a CONNECT target or from the
 * authority of an absolute-URI request line. This, not a Host header or SNI, is what the
 * policy decides on, so it is canonicalised exactly as clients canonicalise URLs:
 * `127.1`, `0x7f.0.0.1`, `2130706433` and `[::ffff:127.0.0.1]` all become `127.0.0.1`.
 * A Host header or SNI may only agree with it (see the end of this file).
 */
import { Malformed, TargetError, rewrap } from "./errors.js";
import { canonicalHost, checkAuthorityText, parsePort, splitHostPort, type HostKind } from "./host.js";

/** A canonical destination. */
export interface Target {
  /** Lower-case punycode name without trailing dot, dotted-quad IPv4, or IPv6 without brackets. */
  readonly host: string;
  readonly kind: HostKind;
  readonly port: number;
}

/** A plain-HTTP proxy request's absolute URI, split into where it goes and what to ask there. */
export interface AbsoluteTarget extends Target {
  readonly scheme: "http" | "https";
  /** The origin-form request target to forward: path and query (no fragment), `/` if the URI had none. */
  readonly path: string;
}

const DEFAULT_PORTS = { http: 80, https: 443 } as const;

/**
 * Reads an authority (`host:port`); `defaultPort` applies when it has none, and without
 * one a missing port is an error, as it is for CONNECT. Throws {@link TargetError}.
 *
 * @example parseAuthority("0x7f.1:8080") // { host: "127.0.0.1", kind: "ipv4", port: 8080 }
 */
export function parseAuthority(authority: string, defaultPort?: number): Target {
  return rewrap(() => readAuthority(authority, defaultPort), (reason) => new TargetError(authority, reason));
}

/** Reads a CONNECT request's target, which must carry a port (RFC 9110 §9.3.6). */
export function parseConnectTarget(target: string): Target {
  return parseAuthority(target);
}

/**
 * Reads the absolute URI of a plain proxy request (`GET http://host/path HTTP/1.1`); the
 * port defaults by scheme. Throws {@link TargetError}.
 */
export function parseAbsoluteUri(uri: string): AbsoluteTarget {
  return rewrap(
    () => {
      const m = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(uri);
      if (!m) throw new Malformed("is not an absolute http:// or https:// URI");
      const scheme = m[1]!.toLowerCase() as "http" | "https";
      // A fragment is the client's own business and is never sent on.
      const path = m[3]!.replace(/#.*$/s, "");
      if (/[\s\p{Cc}]/u.test(path)) throw new Malformed("has whitespace or a control character in its path");
      const target = readAuthority(m[2]!, DEFAULT_PORTS[scheme]);
      return { ...target, scheme, path: path === "" ? "/" : path.startsWith("/") ? path : `/${path}` };
    },
    (reason) => new TargetError(uri, reason),
  );
}

function readAuthority(authority: string, defaultPort: number | undefined): Target {
  checkAuthorityText(authority);
  const split = splitHostPort(authority);
  if (split.port === null && defaultPort === undefined) throw new Malformed("has no port; a CONNECT target is host:port");
  const port = split.port === null ? defaultPort! : parsePort(split.port);
  const host = canonicalHost(split.host);
  return { host: host.name, kind: host.kind, port };
}

/**
 * Whether a request's Host header names the same host and port as its target; a header
 * without a port means `defaultPort` (the scheme's, or 443 for CONNECT). A Host header that
 * cannot be read disagrees.
 */
export function hostHeaderAgrees(header: string, target: Target, defaultPort: number): boolean {
  try {
    const host = readAuthority(header.trim(), defaultPort);
    return host.host === target.host && host.port === target.port;
  } catch (err) {
    if (err instanceof Malformed) return false;
    throw err;
  }
}

/**
 * Whether a TLS ClientHello's server name agrees with the target. No SNI agrees (there
 * is nothing to disagree, and IP targets carry none); an SNI must canonicalise to the
 * target's host, so an IP target with a name in SNI disagrees.
 */
export function sniAgrees(sni: string | undefined, target: Target): boolean {
  if (sni === undefined || sni === "") return true;
  try {
    checkAuthorityText(sni);
    if (sni.includes(":")) return false;
    return canonicalHost(sni).name === target.host;
  } catch (err) {
    if (err instanceof Malformed) return false;
    throw err;
  }
}
