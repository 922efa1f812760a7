/**
 * Kubernetes discovery against a local API server speaking EndpointSlice list and watch: one
 * list, then watches resumed from the last resourceVersion, a relist only on 410 Gone, the
 * service account token read afresh, and no request on a timer.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { DaemonEndpoint } from "../src/discovery/discovery.js";
import { endpointsOf } from "../src/discovery/endpoint-slices.js";
import { KubernetesDiscovery } from "../src/discovery/kubernetes.js";
import { FakeKube, slice } from "./helpers/fake-kube.js";

const NS = "sbx";
const SVC = "sbx-daemon";
let kube: FakeKube;
let dir: string;
let discovery: KubernetesDiscovery;
let seen: DaemonEndpoint[][];
let warnings: string[];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !check(); await sleep(20)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}
const latest = () => seen.at(-1) ?? [];
const urls = () => latest().map((e) => `${e.url} ${e.name} ${e.ready ? "ready" : "not-ready"}`);

beforeEach(async () => {
  kube = await FakeKube.start(NS, SVC);
  dir = mkdtempSync(join(tmpdir(), "sbx-kube-sa-"));
  writeFileSync(join(dir, "token"), "sa-token-1\n");
  seen = [];
  warnings = [];
  kube.apply("ADDED", slice("sbx-daemon-a", SVC, 7070, [{ ip: "10.0.0.1", pod: "d-1" }, { ip: "10.0.0.2", pod: "d-2", ready: false }]));
  discovery = new KubernetesDiscovery({
    apiUrl: kube.url, tokenFile: join(dir, "token"), caFile: kube.caFile, namespace: NS, service: SVC, portName: "api",
    log: { info: () => {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
  });
});
afterEach(async () => {
  discovery.close();
  await kube[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

describe("EndpointSlices to daemons", () => {
  it("keeps not-ready and terminating endpoints (their sandboxes stay reachable) but marks them; skips FQDN slices, other ports, bad addresses", () => {
    const out = endpointsOf(
      [
        slice("a", SVC, 7070, [{ ip: "10.0.0.1", pod: "p1" }, { ip: "10.0.0.2", pod: "p2", ready: false }, { ip: "10.0.0.3", pod: "p3", terminating: true }]),
        { ...slice("b", SVC, 7070, [{ ip: "fd00::5", pod: "p5" }]), addressType: "IPv6" },
        { ...slice("c", SVC, 7070, [{ ip: "daemon.example", pod: "p6" }]), addressType: "FQDN" },
        { ...slice("d", SVC, 7070, [{ ip: "10.0.0.9", pod: "p9" }]), ports: [{ name: "metrics", port: 9090 }] },
        { ...slice("e", SVC, 7070, [{ ip: "10.0.0.1 ; rm", pod: "p10" }]) },
        // The same endpoint in two slices while it moves: ready in either counts.
        slice("f", SVC, 7070, [{ ip: "10.0.0.2", pod: "p2", ready: true }]),
      ],
      "api",
    );
    expect(out).toEqual([
      { url: "ws://10.0.0.1:7070", name: "p1", ready: true },
      { url: "ws://10.0.0.2:7070", name: "p2", ready: true },
      { url: "ws://10.0.0.3:7070", name: "p3", ready: false },
      { url: "ws://[fd00::5]:7070", name: "p5", ready: true },
    ]);
  });
});

describe("list and watch", () => {
  it("lists once, then watches from the list's resourceVersion; each event changes the set; nothing is read on a timer", async () => {
    discovery.start((e) => seen.push(e));
    await until("the first set", () => seen.length === 1);
    expect(urls()).toEqual(["ws://10.0.0.1:7070 d-1 ready", "ws://10.0.0.2:7070 d-2 not-ready"]);
    await until("a watch", () => kube.openWatches === 1);
    const [list, watch] = kube.requests;
    expect(list).toMatchObject({ path: `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, watch: false, authorization: "Bearer sa-token-1" });
    expect(watch!.query.get("resourceVersion")).toBe("101");
    expect(watch!.query.get("allowWatchBookmarks")).toBe("true");
    expect(Number(watch!.query.get("timeoutSeconds"))).toBeGreaterThanOrEqual(240);

    kube.apply("MODIFIED", slice("sbx-daemon-a", SVC, 7070, [{ ip: "10.0.0.1", pod: "d-1", terminating: true }, { ip: "10.0.0.2", pod: "d-2" }]));
    await until("the terminating pod", () => urls()[0] === "ws://10.0.0.1:7070 d-1 not-ready");
    expect(urls()).toEqual(["ws://10.0.0.1:7070 d-1 not-ready", "ws://10.0.0.2:7070 d-2 ready"]);
    kube.apply("ADDED", slice("sbx-daemon-b", SVC, 7070, [{ ip: "10.0.0.3", pod: "d-3" }]));
    await until("the new slice", () => urls().length === 3);
    kube.apply("DELETED", slice("sbx-daemon-a", SVC, 7070, []));
    await until("the deleted slice", () => urls().length === 1);
    expect(urls()).toEqual(["ws://10.0.0.3:7070 d-3 ready"]);

    const requests = kube.requests.length;
    await sleep(1500);
    expect(kube.requests.length).toBe(requests);
    expect(kube.openWatches).toBe(1);
  });

  it("a dropped watch resumes from the last version seen (a bookmark's too), replaying what it missed, without a new list", async () => {
    discovery.start((e) => seen.push(e));
    await until("a watch", () => kube.openWatches === 1);
    kube.apply("ADDED", slice("sbx-daemon-b", SVC, 7070, [{ ip: "10.0.0.3", pod: "d-3" }]));
    kube.bookmark();
    const bookmarked = kube.resourceVersion;
    await until("the new slice", () => urls().length === 3);
    await sleep(100); // the bookmark is read

    kube.dropWatches();
    // While no watch is open: a change the next watch must replay.
    kube.apply("DELETED", slice("sbx-daemon-b", SVC, 7070, []));
    await until("a second watch", () => kube.requests.filter((r) => r.watch).length === 2 && kube.openWatches === 1);
    const second = kube.requests.filter((r) => r.watch)[1]!;
    expect(second.query.get("resourceVersion")).toBe(String(bookmarked));
    expect(kube.requests.filter((r) => !r.watch)).toHaveLength(1);
    await until("the replayed deletion", () => urls().length === 2);
    expect(urls()).toEqual(["ws://10.0.0.1:7070 d-1 ready", "ws://10.0.0.2:7070 d-2 not-ready"]);
  });

  it("410 Gone on a resumed watch makes it list again, and the set is what the server holds now", async () => {
    discovery.start((e) => seen.push(e));
    await until("a watch", () => kube.openWatches === 1);
    kube.dropWatches();
    // Changes the next watch can no longer replay: history is compacted past them.
    kube.apply("DELETED", slice("sbx-daemon-a", SVC, 7070, []));
    kube.apply("ADDED", slice("sbx-daemon-c", SVC, 7071, [{ ip: "10.0.0.7", pod: "d-7" }]));
    kube.compact();
    await until("a relist", () => kube.requests.filter((r) => !r.watch).length === 2);
    await until("the relisted set", () => urls().length === 1);
    expect(urls()).toEqual(["ws://10.0.0.7:7071 d-7 ready"]);
    expect(warnings.some((w) => /the watch reported Expired \(410\): too old resource version/.test(w))).toBe(true);
    await until("a watch from the new list", () => kube.openWatches === 1);
    expect(kube.requests.filter((r) => r.watch).at(-1)!.query.get("resourceVersion")).toBe(String(kube.resourceVersion));
  });

  it("reads the service account token again for every request (the kubelet rotates it), and backs off on API errors", async () => {
    kube.failNext = { status: 403, times: 2 };
    discovery.start((e) => seen.push(e));
    await until("the first set", () => seen.length === 1);
    expect(warnings.filter((w) => /GET \/apis\/discovery\.k8s\.io\/v1\/namespaces\/sbx\/endpointslices answered HTTP 403: endpointslices is forbidden/.test(w))).toHaveLength(2);
    // The set is published before the watch is asked for: a drop before the watch is open would drop nothing.
    await until("the first watch", () => kube.openWatches === 1);
    expect(kube.requests.filter((r) => r.watch)[0]!.authorization).toBe("Bearer sa-token-1");
    writeFileSync(join(dir, "token"), "sa-token-2\n");
    kube.dropWatches();
    await until("a new watch", () => kube.requests.filter((r) => r.watch).length === 2);
    expect(kube.requests.at(-1)!.authorization).toBe("Bearer sa-token-2");
  });
});
