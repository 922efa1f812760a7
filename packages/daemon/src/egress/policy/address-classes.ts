/**
 * Which special-purpose block an IP address falls in (IANA's IPv4 and IPv6 special-purpose
 * registries, plus the cloud metadata endpoints). IPv6 forms that reach an IPv4 address
 * (mapped, translated, NAT64, 6to4, IPv4-compatible) are judged by that IPv4 address.
 */
import { formatIp, inPrefix, prefix, unmapIPv4, type Prefix } from "./ip.js";

/** The blocks a sandbox may not reach unless `allowNet` names the address as a literal; `public` is the rest. */
export type AddressClass = "public" | "unspecified" | "loopback" | "private" | "link-local" | "metadata" | "multicast" | "broadcast" | "documentation" | "reserved";

/** An address's class and a phrase describing it, to follow "<address> is". */
export interface Classification {
  readonly addressClass: AddressClass;
  readonly what: string;
}

const block = (cidr: string, addressClass: AddressClass, what: string) => ({ prefix: prefix(cidr), addressClass, what });

/** Most specific first: the first block that holds an address decides. */
const BLOCKS: readonly { prefix: Prefix; addressClass: AddressClass; what: string }[] = [
  block("169.254.169.254/32", "metadata", "the cloud metadata service (AWS, GCP, Azure, OCI, DigitalOcean)"),
  block("169.254.170.2/32", "metadata", "the AWS ECS task metadata service"),
  block("100.100.100.200/32", "metadata", "the Alibaba Cloud metadata service"),
  block("fd00:ec2::254/128", "metadata", "the AWS metadata service over IPv6"),
  block("fd20:ce::254/128", "metadata", "the Google Cloud metadata service over IPv6"),
  block("0.0.0.0/32", "unspecified", "the unspecified address, which reaches this host"),
  block("0.0.0.0/8", "reserved", "in 0.0.0.0/8, reserved for 'this network'"),
  block("10.0.0.0/8", "private", "a private address (RFC 1918)"),
  block("100.64.0.0/10", "private", "a carrier-grade NAT shared address (RFC 6598)"),
  block("127.0.0.0/8", "loopback", "a loopback address"),
  block("169.254.0.0/16", "link-local", "a link-local address"),
  block("172.16.0.0/12", "private", "a private address (RFC 1918)"),
  block("192.0.0.0/24", "reserved", "reserved for IETF protocol assignments (192.0.0.0/24)"),
  block("192.0.2.0/24", "documentation", "a documentation address (TEST-NET-1)"),
  block("192.88.99.0/24", "reserved", "a deprecated 6to4 relay address"),
  block("192.168.0.0/16", "private", "a private address (RFC 1918)"),
  block("198.18.0.0/15", "reserved", "reserved for benchmarking (198.18.0.0/15)"),
  block("198.51.100.0/24", "documentation", "a documentation address (TEST-NET-2)"),
  block("203.0.113.0/24", "documentation", "a documentation address (TEST-NET-3)"),
  block("224.0.0.0/4", "multicast", "a multicast address"),
  block("255.255.255.255/32", "broadcast", "the broadcast address"),
  block("240.0.0.0/4", "reserved", "reserved (240.0.0.0/4)"),
  block("::/128", "unspecified", "the unspecified address, which reaches this host"),
  block("::1/128", "loopback", "the loopback address"),
  block("fe80::/10", "link-local", "a link-local address"),
  block("fec0::/10", "private", "a site-local address (deprecated, fec0::/10)"),
  block("fc00::/7", "private", "a unique local address (fc00::/7)"),
  block("ff00::/8", "multicast", "a multicast address"),
  block("64:ff9b:1::/48", "private", "a local-use NAT64 address (64:ff9b:1::/48)"),
  block("100::/64", "reserved", "a discard-only address (100::/64)"),
  block("2001::/32", "reserved", "a Teredo tunnel address (2001::/32)"),
  block("2001:2::/48", "reserved", "reserved for benchmarking (2001:2::/48)"),
  block("2001:db8::/32", "documentation", "a documentation address (2001:db8::/32)"),
  block("3fff::/20", "documentation", "a documentation address (3fff::/20)"),
];

/** IPv6 blocks whose addresses carry an IPv4 address at byte `at`; checked after BLOCKS, so `::` and `::1` are not read as IPv4. */
const EMBEDDING: readonly { prefix: Prefix; at: number; form: string }[] = [
  { prefix: prefix("::ffff:0:0:0/96"), at: 12, form: "IPv4-translated" },
  { prefix: prefix("64:ff9b::/96"), at: 12, form: "NAT64" },
  { prefix: prefix("::/96"), at: 12, form: "IPv4-compatible" },
  { prefix: prefix("2002::/16"), at: 2, form: "6to4" },
];

const GLOBAL_UNICAST = prefix("2000::/3");

/** Classifies an address given as bytes (from `ipBytes`); IPv4-mapped IPv6 is classified as its IPv4 address. */
export function classifyAddress(raw: Uint8Array): Classification {
  const bytes = unmapIPv4(raw);
  const known = BLOCKS.find((b) => inPrefix(bytes, b.prefix));
  if (known) return known;
  if (bytes.length === 4) return { addressClass: "public", what: "a public address" };
  const embedding = EMBEDDING.find((e) => inPrefix(bytes, e.prefix));
  if (embedding) {
    const v4 = bytes.slice(embedding.at, embedding.at + 4);
    const inner = classifyAddress(v4);
    if (inner.addressClass !== "public") return { addressClass: inner.addressClass, what: `the ${embedding.form} form of ${formatIp(v4)}, ${inner.what}` };
    // IPv4-compatible addresses are deprecated (RFC 4291) and routed nowhere useful.
    if (embedding.form === "IPv4-compatible") return { addressClass: "reserved", what: "a deprecated IPv4-compatible address" };
    return { addressClass: "public", what: `the ${embedding.form} form of a public address` };
  }
  if (!inPrefix(bytes, GLOBAL_UNICAST)) return { addressClass: "reserved", what: "outside the IPv6 global unicast block (2000::/3)" };
  return { addressClass: "public", what: "a public address" };
}
