/**
 * Vetting the address the proxy is about to dial. Loopback, private, link-local,
 * multicast, metadata, other special-purpose blocks and this host's own addresses are
 * refused unless an IP literal in `allowNet` names exactly that address; the daemon's
 * own API is refused even then.
 */
import { networkInterfaces } from "node:os";
import type { AllowedLiteral } from "./allowlist.js";
import { classifyAddress, type AddressClass } from "./address-classes.js";
import { canonicalIp, formatIp, inPrefix, ipBytes, prefix, unmapIPv4, type Prefix } from "./ip.js";
import { hostPort } from "./host.js";

/** What the vetting needs to know besides the address. */
export interface VetContext {
  /** The IP literals of the sandbox's `allowNet` (`AllowList.literals`). */
  readonly allowedLiterals: readonly AllowedLiteral[];
  /** This host's own addresses; read from `os.networkInterfaces()` at each call when omitted. */
  readonly hostAddresses?: readonly string[];
  /** Where the daemon's API listens (its `listen` setting, after binding); never reachable from a sandbox. */
  readonly daemonApi: { readonly host: string; readonly port: number };
  /** Where the daemon's /metrics listens (config metricsListen), if it does: never reachable from a sandbox either. */
  readonly daemonMetrics?: { readonly host: string; readonly port: number } | null;
  /** `egress.allowedRanges`: private (or loopback, link-local) blocks the operator approved for every sandbox. */
  readonly approvedRanges?: readonly Prefix[];
}

/** The classes an operator may approve ranges of; metadata, multicast, broadcast and unspecified never. */
const APPROVABLE: ReadonlySet<AddressClass> = new Set(["private", "loopback", "link-local", "reserved", "documentation"]);

/**
 * Reads `egress.allowedRanges` (CIDR blocks); throws naming an entry that is not one, or that
 * covers a cloud metadata address (those stay refused whatever the operator approves).
 */
export function parseApprovedRanges(entries: readonly string[]): Prefix[] {
  return entries.map((cidr, i) => {
    const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(cidr);
    const bytes = m ? ipBytes(m[1]!) : null;
    if (!m || !bytes || Number(m[2]) > bytes.length * 8) throw new Error(`config.egress.allowedRanges[${i}]: '${cidr}' is not a CIDR block such as 10.20.0.0/16`);
    const p = prefix(`${formatIp(bytes)}/${m[2]}`);
    const metadata = ["169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "fd20:ce::254"].find((a) => inPrefix(ipBytes(a)!, p));
    if (metadata) throw new Error(`config.egress.allowedRanges[${i}]: '${cidr}' covers the cloud metadata address ${metadata}, which sandboxes may never reach`);
    return p;
  });
}

/** Why an address was refused: its class, this host's own, the daemon's API, or not an address at all. */
export type RefusalKind = Exclude<AddressClass, "public"> | "host" | "daemon-api" | "invalid";

/** A refused address: what kind of refusal, and a reason that names the address. */
export type AddressRefusal = { allowed: false; kind: RefusalKind; reason: string };

/** The outcome of vetting: `via` says whether an `allowNet` literal was needed. */
export type AddressVerdict = { allowed: true; via: "public" | "literal" } | AddressRefusal;

/** The addresses of this host's interfaces right now, canonical. */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => canonicalIp(i.address) ?? i.address));
}

/**
 * Decides whether the proxy may dial `ip:port`.
 *
 * @example vetAddress("127.0.0.1", { allowedLiterals: [], daemonApi: { host: "127.0.0.1", port: 7070 } }, 80)
 * // { allowed: false, kind: "loopback", reason: "127.0.0.1 is a loopback address; ..." }
 */
export function vetAddress(ip: string, ctx: VetContext, port: number): AddressVerdict {
  const raw = ipBytes(ip);
  if (!raw) return { allowed: false, kind: "invalid", reason: `${JSON.stringify(ip)} is not an IP address` };
  const address = formatIp(unmapIPv4(raw));
  const own = ownAddresses(ctx);
  const api = daemonApiRefusal(address, port, ctx, own);
  if (api) return api;
  const named = ctx.allowedLiterals.some((l) => canonicalIp(l.address) === address && (l.port === null || l.port === port));
  const { addressClass, what } = classifyAddress(raw);
  const approved = APPROVABLE.has(addressClass) && (ctx.approvedRanges ?? []).some((p) => inPrefix(unmapIPv4(raw), p));
  if (addressClass !== "public" && !named && !approved) return { allowed: false, kind: addressClass, reason: `${address} is ${what}${hint(address, port)}` };
  if (own.has(address) && !named && !approved) return { allowed: false, kind: "host", reason: `${address} is one of this host's own addresses${hint(address, port)}` };
  return { allowed: true, via: named ? "literal" : "public" };
}

/**
 * Refuses `ip:port` if it could be one of the daemon's own listeners, its API or its /metrics
 * (no token, every tenant's figures): its listen address, or any loopback, unspecified or own
 * address on its port, since a wildcard listener answers on all of them. Applies to
 * `egress.resolve` targets too. Returns null when it is neither.
 */
export function daemonApiRefusal(ip: string, port: number, ctx: VetContext, own = ownAddresses(ctx)): AddressRefusal | null {
  const listeners: Array<[{ readonly host: string; readonly port: number }, string]> = [[ctx.daemonApi, "API"]];
  if (ctx.daemonMetrics) listeners.push([ctx.daemonMetrics, "metrics endpoint"]);
  for (const [listener, what] of listeners) {
    if (port !== listener.port) continue;
    const raw = ipBytes(ip);
    if (!raw) return { allowed: false, kind: "invalid", reason: `${JSON.stringify(ip)} is not an IP address` };
    const address = formatIp(unmapIPv4(raw));
    const { addressClass } = classifyAddress(raw);
    const listen = canonicalIp(listener.host.replace(/^\[|\]$/g, ""));
    if (address === listen || addressClass === "loopback" || addressClass === "unspecified" || own.has(address)) {
      return { allowed: false, kind: "daemon-api", reason: `${hostPort(address, port)} is the sbx daemon's ${what}, which sandboxes can never reach` };
    }
  }
  return null;
}

function ownAddresses(ctx: VetContext): Set<string> {
  return new Set((ctx.hostAddresses ?? localAddresses()).map((a) => canonicalIp(a) ?? a));
}

function hint(address: string, port: number): string {
  return `; only an IP literal in allowNet (${hostPort(address, port)}) can allow it`;
}
