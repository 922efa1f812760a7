/**
 * The whole egress decision for one request, in the order the proxy must take it: the
 * canonical target is matched against `allowNet`, then resolved once and vetted. The
 * proxy dials `address:port` from an allowed decision and nothing else.
 */
import { vetAddress, daemonApiRefusal, type RefusalKind, type VetContext } from "./addresses.js";
import type { AllowEntry, AllowList } from "./allowlist.js";
import { resolveTarget, type ResolveOptions } from "./resolve.js";
import type { Target } from "./target.js";

/** A decision; a refusal carries the HTTP status the proxy answers with and a reason naming the host. */
export type EgressDecision =
  | { allowed: true; entry: AllowEntry; address: string; port: number; via: "literal" | "pin" | "dns" }
  | { allowed: false; status: 403 | 502; kind: RefusalKind | "not-allowed" | "unresolved"; reason: string };

/** The resolution options without the literals, which come from the allow-list itself. */
export type DecideOptions = Omit<ResolveOptions, "allowedLiterals">;

/**
 * Decides a request to `target` under `allowList`.
 *
 * @example
 * const d = await decideEgress(parseConnectTarget(req.url), allowList, { daemonApi, pins });
 * if (!d.allowed) refuse(d.status, d.reason); else dial(d.address, d.port);
 */
export async function decideEgress(target: Target, allowList: AllowList, opts: DecideOptions): Promise<EgressDecision> {
  const match = allowList.match(target.host, target.port);
  if (!match.allowed) return { allowed: false, status: 403, kind: "not-allowed", reason: match.reason };
  const resolved = await resolveTarget(target, { ...opts, allowedLiterals: allowList.literals, entryPort: match.entry.port });
  if (!resolved.allowed) return { ...resolved, status: resolved.kind === "unresolved" ? 502 : 403 };
  return { allowed: true, entry: match.entry, address: resolved.address, port: resolved.port, via: resolved.via };
}

/**
 * Whether an open connection is still allowed after `allowNet` changed: the target must
 * still match, and the address it was dialled at must still pass (without resolving again).
 */
export function stillAllowed(target: Target, dialled: { address: string; port: number; via: "literal" | "pin" | "dns" }, allowList: AllowList, ctx: Omit<VetContext, "allowedLiterals">): boolean {
  if (!allowList.match(target.host, target.port).allowed) return false;
  if (dialled.via === "pin") return daemonApiRefusal(dialled.address, dialled.port, { ...ctx, allowedLiterals: [] }) === null;
  return vetAddress(dialled.address, { ...ctx, allowedLiterals: allowList.literals }, dialled.port).allowed;
}
