/**
 * IP addresses as bytes: parsing, canonical spelling and prefix tests. Only canonical
 * dotted-quad IPv4 is accepted here; the lenient spellings clients also understand
 * (`127.1`, `0x7f.0.0.1`) are turned into it by host.ts before anything reaches this file.
 */

const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const DOTTED_QUAD = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

/** True for an IPv4 address written as four decimal numbers without leading zeros. */
export function isDottedQuad(text: string): boolean {
  return DOTTED_QUAD.test(text);
}

/**
 * The bytes of an IP address (4 for IPv4, 16 for IPv6), or null if `text` is not one.
 * IPv6 is taken in any valid spelling, without brackets and without a zone.
 */
export function ipBytes(text: string): Uint8Array | null {
  if (isDottedQuad(text)) return Uint8Array.from(text.split(".").map(Number));
  if (!text.includes(":") || text.includes("%")) return null;
  try {
    // The WHATWG parser validates and compresses, leaving only hex groups and at most one "::".
    return expandIPv6(new URL(`http://[${text}]/`).hostname.slice(1, -1));
  } catch {
    return null;
  }
}

function expandIPv6(compressed: string): Uint8Array {
  const [head = "", tail] = compressed.split("::");
  const first = head ? head.split(":") : [];
  const last = tail ? tail.split(":") : [];
  const groups = tail === undefined ? first : [...first, ...Array<string>(8 - first.length - last.length).fill("0"), ...last];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    const n = parseInt(group, 16);
    bytes[2 * i] = n >> 8;
    bytes[2 * i + 1] = n & 0xff;
  });
  return bytes;
}

/** The canonical spelling of an address: dotted quad, or RFC 5952 IPv6 without brackets. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/**
 * The canonical spelling of an IP, with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) written as the
 * IPv4 address it reaches, so each socket destination has one spelling; null if not an IP.
 */
export function canonicalIp(text: string): string | null {
  const bytes = ipBytes(text);
  if (!bytes) return null;
  return formatIp(unmapIPv4(bytes));
}

/** The IPv4 address inside an IPv4-mapped IPv6 address; any other address unchanged. */
export function unmapIPv4(bytes: Uint8Array): Uint8Array {
  return bytes.length === 16 && inPrefix(bytes, MAPPED) ? bytes.slice(12) : bytes;
}

/** A network prefix such as 10.0.0.0/8, parsed once. */
export interface Prefix {
  readonly bytes: Uint8Array;
  readonly bits: number;
}

/** Parses `addr/bits`; for tables written in this code, so a bad one is a programming error. */
export function prefix(cidr: string): Prefix {
  const [addr = "", bits = ""] = cidr.split("/");
  const bytes = ipBytes(addr);
  if (!bytes || !/^\d+$/.test(bits) || Number(bits) > bytes.length * 8) throw new Error(`bad prefix ${cidr}`);
  return { bytes, bits: Number(bits) };
}

/** True if `bytes` lies in `p` (always false across address families). */
export function inPrefix(bytes: Uint8Array, p: Prefix): boolean {
  if (bytes.length !== p.bytes.length) return false;
  const whole = p.bits >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== p.bytes[i]) return false;
  const rest = p.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((bytes[whole]! ^ p.bytes[whole]!) & mask) === 0;
}

const MAPPED = prefix("::ffff:0:0/96");
