import { lookup } from "node:dns/promises";
import { classifyAddress } from "../../src/egress/policy/address-classes.js";
import { ipBytes } from "../../src/egress/policy/ip.js";

/**
 * `egress.allowedRanges` that let sandboxes reach `hosts` as this host does: the addresses they
 * resolve to that the proxy would refuse by default (these CI machines reach public registries and
 * mirrors through an interceptor on a documentation address), as an operator with a mirror would
 * configure them; [] where they resolve to public addresses or not at all.
 */
export async function reachableRanges(hosts: readonly string[]): Promise<string[]> {
  const addresses = (await Promise.all(hosts.map((h) => lookup(h, { all: true }).then((a) => a.map((x) => x.address), () => [] as string[])))).flat();
  return [...new Set(addresses)].filter((a) => classifyAddress(ipBytes(a)!).addressClass !== "public").map((a) => (a.includes(":") ? `${a}/128` : `${a}/32`));
}
