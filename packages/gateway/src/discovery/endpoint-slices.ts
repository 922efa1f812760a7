import type { DaemonEndpoint } from "./discovery.js";

/** The fields of a discovery.k8s.io/v1 EndpointSlice the gateway reads. */
export interface EndpointSlice {
  metadata?: { name?: string; resourceVersion?: string };
  addressType?: string;
  ports?: Array<{ name?: string; port?: number; protocol?: string }> | null;
  endpoints?: Array<{
    addresses?: string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
    nodeName?: string;
    targetRef?: { kind?: string; name?: string };
  }> | null;
}

/** More daemons than any fleet this gateway is meant for: the rest are left out, loudly. */
export const MAX_ENDPOINTS = 10_000;

/**
 * The daemons a set of EndpointSlices names. Every endpoint is kept, ready or not, so that
 * sandboxes on a daemon that drains (not ready, or terminating) stay reachable; only ready,
 * non-terminating ones get new sandboxes. Kubernetes says a nil `ready` means ready and a nil
 * `terminating` means not terminating.
 *
 * @example endpointsOf([{ addressType: "IPv4", ports: [{ name: "api", port: 7070 }], endpoints: [{ addresses: ["10.0.0.5"], conditions: { ready: true }, targetRef: { name: "sbx-daemon-x1" } }] }], "api")
 * // [{ url: "ws://10.0.0.5:7070", name: "sbx-daemon-x1", ready: true }]
 */
export function endpointsOf(slices: Iterable<EndpointSlice>, portName: string | null): DaemonEndpoint[] {
  const byUrl = new Map<string, DaemonEndpoint>();
  for (const slice of slices) {
    if (slice.addressType !== "IPv4" && slice.addressType !== "IPv6") continue;
    const port = (slice.ports ?? []).find((p) => (portName ? p.name === portName : true))?.port;
    if (!port || !Number.isInteger(port) || port < 1 || port > 65535) continue;
    for (const e of slice.endpoints ?? []) {
      const address = e.addresses?.[0];
      if (!address || !/^[0-9a-fA-F.:]+$/.test(address)) continue;
      const url = `ws://${address.includes(":") ? `[${address}]` : address}:${port}`;
      const ready = e.conditions?.ready !== false && e.conditions?.terminating !== true;
      const name = e.targetRef?.name ?? e.nodeName ?? url;
      const seen = byUrl.get(url);
      // One endpoint may sit in two slices while Kubernetes moves it: ready in either counts.
      byUrl.set(url, { url, name, ready: ready || (seen?.ready ?? false) });
    }
  }
  return [...byUrl.values()].sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0)).slice(0, MAX_ENDPOINTS);
}

/** Whether two sorted endpoint lists say the same. */
export function sameEndpoints(a: DaemonEndpoint[], b: DaemonEndpoint[]): boolean {
  return a.length === b.length && a.every((e, i) => e.url === b[i]!.url && e.ready === b[i]!.ready && e.name === b[i]!.name);
}
