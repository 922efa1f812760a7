/**
 * Turning a vetted target into the one address to dial. The name is resolved once, here,
 * and every address it resolves to must pass vetting, so a name that also resolves to
 * 127.0.0.1 (DNS rebinding) is refused rather than raced; the proxy then dials the
 * address returned, never the name. `egress.resolve` pins replace DNS for their names.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { daemonApiRefusal, localAddresses, vetAddress, type RefusalKind, type VetContext } from "./addresses.js";
import { canonicalIp, ipBytes } from "./ip.js";
import { classifyAddress } from "./address-classes.js";
import { ResolveMap } from "./resolve-map.js";
import type { Target } from "./target.js";

/** Resolves a name to all its addresses, in the order the system prefers them. */
export type Lookup = (name: string) => Promise<readonly { address: string; family: number }[]>;

/** The system resolver (getaddrinfo, so /etc/hosts and nsswitch apply), with every address. */
export const systemLookup: Lookup = (name) => dnsLookup(name, { all: true, verbatim: true });

/** What resolution needs beside the target: the vetting context, the pins, and a resolver. */
export interface ResolveOptions extends VetContext {
  readonly pins?: ResolveMap;
  /** The port of the `allowNet` entry the target matched (null: any port). */
  readonly entryPort?: number | null;
  /** Defaults to {@link systemLookup}; tests inject their own. */
  readonly lookup?: Lookup;
  /** Aborts a lookup that is taking too long; the lookup then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** Where to dial, or why not. `unresolved` is the name's fault (a 502), every other kind a refusal (a 403). */
export type Resolution =
  | { allowed: true; address: string; port: number; addresses: string[]; via: "literal" | "pin" | "dns" }
  | { allowed: false; kind: RefusalKind | "unresolved"; reason: string };

/**
 * Resolves and vets a canonical target (already matched against `allowNet`).
 *
 * @example await resolveTarget(parseConnectTarget("example.com:443"), { allowedLiterals: list.literals, daemonApi })
 */
export async function resolveTarget(target: Target, opts: ResolveOptions): Promise<Resolution> {
  // One snapshot of the host's addresses for every address this name resolves to.
  const ctx: VetContext = { ...opts, hostAddresses: opts.hostAddresses ?? localAddresses() };
  const pin = target.kind === "name" ? (opts.pins ?? ResolveMap.empty).lookup(target.host, target.port) : undefined;
  if (pin) {
    const refusal = daemonApiRefusal(pin.address, pin.port, ctx);
    if (refusal) return { ...refusal, reason: `${target.host} is pinned by egress.resolve to ${refusal.reason}` };
    // A pin to a loopback or private address opens what is behind it only on a port someone named:
    // a port-less pin plus a port-less allowNet entry (or secret host) must not open every port there.
    if (!pin.portFromPin && (opts.entryPort ?? null) === null) {
      const { addressClass, what } = classifyAddress(ipBytes(pin.address)!);
      if (addressClass !== "public") {
        return {
          allowed: false,
          kind: addressClass,
          reason: `${target.host} is pinned by egress.resolve to ${pin.address} (${what}) without a port, and its allowNet entry names none: name the port in allowNet (${target.host}:${target.port}) or in the pin`,
        };
      }
    }
    return { allowed: true, address: pin.address, port: pin.port, addresses: [pin.address], via: "pin" };
  }
  if (target.kind !== "name") {
    const verdict = vetAddress(target.host, ctx, target.port);
    return verdict.allowed ? { allowed: true, address: target.host, port: target.port, addresses: [target.host], via: "literal" } : verdict;
  }
  let found: readonly { address: string }[];
  try {
    found = await abortable(() => (opts.lookup ?? systemLookup)(target.host), opts.signal);
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return { allowed: false, kind: "unresolved", reason: `${target.host} does not resolve (${code})` };
  }
  if (found.length === 0) return { allowed: false, kind: "unresolved", reason: `${target.host} resolves to no address` };
  const addresses = [...new Set(found.map((a) => canonicalIp(a.address) ?? a.address))];
  for (const address of addresses) {
    const verdict = vetAddress(address, ctx, target.port);
    if (!verdict.allowed) return { ...verdict, reason: `${target.host} resolves to a refused address: ${verdict.reason}` };
  }
  return { allowed: true, address: addresses[0]!, port: target.port, addresses, via: "dns" };
}

/** Starts `start` unless already aborted, and stops waiting for it on abort (getaddrinfo itself cannot be cancelled). */
function abortable<T>(start: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  signal?.throwIfAborted();
  const work = start();
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
