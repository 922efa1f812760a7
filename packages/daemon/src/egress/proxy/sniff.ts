/**
 * What the first bytes of a tunnel are, read before any of them is passed on: the server name
 * of a TLS ClientHello (reassembled across records, since a client may split it anywhere), or
 * whether plaintext starts with an HTTP request line. Pure functions over bytes, fuzzed by
 * test/egress/sniff.test.ts: every input yields an answer, never an exception.
 */

/** The result of reading a ClientHello: its server name, null if it has none, or why there is no answer. */
export type HelloName = string | null | "more" | "not-tls" | "bad";

/** The largest ClientHello the proxy reassembles; real ones (post-quantum key shares included) are a few KiB. */
export const MAX_CLIENT_HELLO = 64 * 1024;

const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const RECORD_HEADER = 5;
const MAX_RECORD = 16384;
const EXT_SERVER_NAME = 0;

/**
 * The server name of the TLS ClientHello at the start of `buf`. The handshake message is put
 * together from as many handshake records as it spans; "more" until it is whole, "not-tls" if
 * the bytes do not start a TLS handshake, "bad" for anything malformed or past
 * {@link MAX_CLIENT_HELLO} (refused, never passed on: a name the proxy could not read must
 * not slip through as "no name"). null only for a well-formed ClientHello without SNI.
 *
 * @example clientHelloServerName(helloBytes) // "api.example.com"
 */
export function clientHelloServerName(buf: Buffer, maxBytes = MAX_CLIENT_HELLO): HelloName {
  if (buf.length < 1) return "more";
  if (buf[0] !== HANDSHAKE) return "not-tls";
  const message = handshakeMessage(buf, maxBytes);
  if (typeof message === "string") return message;
  return serverName(message);
}

/** The first handshake message, gathered from consecutive handshake records. */
function handshakeMessage(buf: Buffer, maxBytes: number): Buffer | "more" | "bad" {
  const parts: Buffer[] = [];
  let have = 0;
  let need = -1; // the message's length with its 4-byte header, once known
  for (let p = 0; ; ) {
    if (buf.length < p + RECORD_HEADER) return "more";
    if (buf[p] !== HANDSHAKE || buf[p + 1] !== 3) return "bad";
    const length = buf.readUInt16BE(p + 3);
    if (length === 0 || length > MAX_RECORD) return "bad";
    if (buf.length < p + RECORD_HEADER + length) return "more";
    parts.push(buf.subarray(p + RECORD_HEADER, p + RECORD_HEADER + length));
    have += length;
    p += RECORD_HEADER + length;
    if (need < 0 && have >= 4) {
      const head = Buffer.concat(parts).subarray(0, 4);
      if (head[0] !== CLIENT_HELLO) return "bad";
      need = 4 + head.readUIntBE(1, 3);
      if (need > maxBytes) return "bad";
    }
    if (need >= 0 && have >= need) return Buffer.concat(parts).subarray(0, need);
    if (have > maxBytes) return "bad";
  }
}

/** A cursor over a ClientHello body that never reads past the end: every read is checked. */
class Reader {
  constructor(private readonly buf: Buffer, public pos = 0, private readonly end = buf.length) {}
  get left(): number {
    return this.end - this.pos;
  }
  u8(): number {
    if (this.left < 1) throw new Truncated();
    return this.buf[this.pos++]!;
  }
  u16(): number {
    if (this.left < 2) throw new Truncated();
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  bytes(n: number): Buffer {
    if (this.left < n) throw new Truncated();
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  /** A reader over the next `n` bytes (a length-prefixed vector), consumed from this one. */
  sub(n: number): Reader {
    if (this.left < n) throw new Truncated();
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
}

class Truncated extends Error {}

/** RFC 8446 §4.1.2 / RFC 6066 §3: the host_name of the one server_name extension, if any. */
function serverName(message: Buffer): string | null | "bad" {
  try {
    const r = new Reader(message, 4);
    r.bytes(2 + 32); // legacy_version, random
    r.bytes(r.u8()); // legacy_session_id
    const suites = r.u16();
    if (suites === 0 || suites % 2) return "bad";
    r.bytes(suites);
    const compression = r.u8();
    if (compression === 0) return "bad";
    r.bytes(compression);
    if (r.left === 0) return null; // no extensions at all
    const extensions = r.sub(r.u16());
    if (r.left !== 0) return "bad";
    const seen = new Set<number>();
    let name: string | null = null;
    while (extensions.left > 0) {
      const type = extensions.u16();
      const data = extensions.sub(extensions.u16());
      // A repeated extension is forbidden; a server could read the other copy than the proxy did.
      if (seen.has(type)) return "bad";
      seen.add(type);
      if (type !== EXT_SERVER_NAME) continue;
      const list = data.sub(data.u16());
      if (data.left !== 0 || list.left === 0) return "bad";
      while (list.left > 0) {
        const kind = list.u8();
        const value = list.bytes(list.u16());
        if (kind !== 0) continue; // only host_name is defined; others are skipped as servers do
        if (name !== null || value.length === 0) return "bad";
        name = value.toString("latin1");
      }
    }
    return name;
  } catch (err) {
    if (err instanceof Truncated) return "bad";
    throw err;
  }
}

/** Bytes of plaintext the proxy waits for to see a request line whole. */
export const MAX_REQUEST_LINE = 8192;

/**
 * Whether plaintext in a tunnel is HTTP: only a whole request line (`METHOD target HTTP/1.x`)
 * is; SMTP's `EHLO host`, FTP's `USER x` and anything else are not. "more" while the first line
 * could still become one (at most {@link MAX_REQUEST_LINE} bytes of it are waited for).
 */
export function plaintextKind(first: Buffer): "http" | "other" | "more" {
  const eol = first.indexOf(0x0a);
  const line = first.subarray(0, eol === -1 ? Math.min(first.length, MAX_REQUEST_LINE) : eol).toString("latin1");
  if (eol !== -1) return /^[A-Z]+ \S+ HTTP\/1\.[01]\r?$/.test(line) ? "http" : "other";
  if (first.length >= MAX_REQUEST_LINE) return "other";
  if (/^[A-Z]*$/.test(line) || /^[A-Z]+ \S*$/.test(line)) return "more";
  const rest = /^[A-Z]+ \S+ (.*)$/s.exec(line)?.[1];
  return rest !== undefined && ["HTTP/1.1\r", "HTTP/1.0\r"].some((v) => v.startsWith(rest)) ? "more" : "other";
}
