/**
 * The compiled `allowNet` list. Entries are checked and normalised once, at `create`, so
 * matching is plain comparison against a target that target.ts already canonicalised.
 */
import { AllowNetError, Malformed, rewrap } from "./errors.js";
import { canonicalHost, checkAuthorityText, hostPort, parsePort, splitHostPort } from "./host.js";
import { canonicalIp } from "./ip.js";
import { publicSuffix } from "./public-suffixes.js";

/** One normalised `allowNet` entry. */
export interface AllowEntry {
  /** The entry as the user wrote it. */
  readonly text: string;
  /** `name` matches that host only; `wildcard` its strict subdomains; `ipv4`/`ipv6` that address. */
  readonly kind: "name" | "wildcard" | "ipv4" | "ipv6";
  /** Canonical host: the name, the wildcard's domain (without `*.`), or the address (IPv6 without brackets). */
  readonly host: string;
  /** The only port allowed, or null for any port. */
  readonly port: number | null;
}

/** An address that an IP literal in `allowNet` names, exempting it from the refused address classes. */
export interface AllowedLiteral {
  readonly address: string;
  readonly port: number | null;
}

/** The outcome of {@link AllowList.match}. */
export type AllowMatch = { allowed: true; entry: AllowEntry } | { allowed: false; reason: string };

/**
 * Parses one entry: `host`, `*.domain`, an IPv4 literal or `[IPv6]`, each optionally with
 * `:port`. Throws {@link AllowNetError} naming the entry and why it cannot be used.
 *
 * @example parseAllowEntry("*.Example.COM.:443") // { kind: "wildcard", host: "example.com", port: 443, ... }
 */
export function parseAllowEntry(text: string, index?: number): AllowEntry {
  return rewrap(
    () => {
      checkAuthorityText(text);
      const split = splitHostPort(text);
      const port = split.port === null ? null : parsePort(split.port);
      if (split.host === "*") throw new Malformed("would allow every host; name the hosts the sandbox needs");
      if (split.host.startsWith("*.")) return { text, kind: "wildcard", host: wildcardDomain(split.host.slice(2)), port };
      if (split.host.includes("*")) throw new Malformed("has '*' where only a whole first label may be one, as in *.example.com");
      const host = canonicalHost(split.host);
      if (host.kind === "ipv4" && host.name !== split.host) {
        throw new Malformed(`spells an IPv4 address in a non-canonical form (clients read it as ${host.name}); write it as four decimal numbers without leading zeros, such as ${host.name}`);
      }
      if (host.name === "0.0.0.0" || host.name === "::") {
        throw new Malformed("is the unspecified address, which reaches every service on this host; name the address you mean");
      }
      return { text, kind: host.kind, host: host.name, port };
    },
    (reason) => new AllowNetError(text, reason, index),
  );
}

/** The domain under a wildcard, refused if it is an address, holds another `*`, or is a public suffix. */
function wildcardDomain(text: string): string {
  if (text.includes("*")) throw new Malformed("has more than one '*'; only the whole first label may be one, as in *.example.com");
  const domain = canonicalHost(text);
  if (domain.kind !== "name") throw new Malformed("puts a wildcard over an IP address; wildcards take a domain name");
  const suffix = publicSuffix(domain.name);
  if (domain.name === suffix) {
    throw new Malformed(`puts a wildcard over the public suffix "${suffix}", which would allow every site registered under it; name a domain registered under it instead`);
  }
  return domain.name;
}

/** Whether an entry names `host` (its canonical IP `ip`, or null for a name): an address only IP literals, a name its own entries and wildcards over its parents. */
function namedBy(host: string, ip: string | null): (e: AllowEntry) => boolean {
  return ip !== null
    ? (e) => (e.kind === "ipv4" || e.kind === "ipv6") && e.host === ip
    : (e) => (e.kind === "name" && e.host === host) || (e.kind === "wildcard" && host.endsWith(`.${e.host}`));
}

/** A sandbox's compiled `allowNet`: nothing is allowed unless an entry names it. */
export class AllowList {
  private constructor(readonly entries: readonly AllowEntry[]) {}

  /** Compiles a list, throwing {@link AllowNetError} for the first bad entry. */
  static parse(texts: readonly string[]): AllowList {
    return new AllowList(texts.map((text, i) => parseAllowEntry(text, i)));
  }

  /** The IP literals in the list, for the address vetting in addresses.ts. */
  get literals(): AllowedLiteral[] {
    return this.entries.filter((e) => e.kind === "ipv4" || e.kind === "ipv6").map((e) => ({ address: e.host, port: e.port }));
  }

  /**
   * Decides whether a canonical target (from target.ts) is named by an entry. An address
   * matches only IP literals; a name matches its own entries and wildcards over its parents.
   */
  match(host: string, port: number): AllowMatch {
    const ip = canonicalIp(host);
    const named = namedBy(host, ip);
    const entry = this.entries.find((e) => named(e) && (e.port === null || e.port === port));
    if (entry) return { allowed: true, entry };
    return { allowed: false, reason: this.whyNot(ip ?? host, port, named) };
  }

  /** Whether some entry names `host`, on whatever port. */
  namesHost(host: string): boolean {
    return this.entries.some(namedBy(host, canonicalIp(host)));
  }

  private whyNot(host: string, port: number, named: (e: AllowEntry) => boolean): string {
    const shown = hostPort(host, port);
    const ports = [...new Set(this.entries.filter(named).map((e) => e.port))];
    if (ports.length > 0) return `${shown} is not in allowNet: it is allowed only on port${ports.length > 1 ? "s" : ""} ${ports.join(", ")}`;
    const overItself = this.entries.find((e) => e.kind === "wildcard" && e.host === host);
    if (overItself) return `${shown} is not in allowNet: ${overItself.text} matches subdomains only, not ${host} itself`;
    return `${shown} is not in allowNet`;
  }
}
