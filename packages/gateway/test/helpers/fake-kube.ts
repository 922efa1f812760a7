import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EndpointSlice } from "../../src/discovery/endpoint-slices.js";

export interface SeenRequest {
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  watch: boolean;
}

type Event = { rv: number; type: string; object: unknown };

/**
 * A Kubernetes API server, as far as EndpointSlice list and watch go, over TLS with a CA of
 * its own: resourceVersions, replay of events after a watch's version, compaction (410 Gone),
 * bookmarks, and dropped watch connections.
 */
export class FakeKube implements AsyncDisposable {
  readonly requests: SeenRequest[] = [];
  private readonly slices = new Map<string, EndpointSlice>();
  private readonly log: Event[] = [];
  private readonly watchers = new Set<{ res: ServerResponse; from: number }>();
  private rv = 100;
  private compactedBelow = 0;
  /** Status to answer list requests with instead of 200 (then back to normal), e.g. 403. */
  failNext: { status: number; times: number } | null = null;

  private constructor(private readonly server: Server, readonly caFile: string, private readonly dir: string) {}

  static async start(namespace: string, service: string): Promise<FakeKube> {
    const dir = mkdtempSync(join(tmpdir(), "sbx-fake-kube-"));
    const ossl = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
    ossl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=fake kube CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
    ossl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "api.key", "-out", "api.csr", "-subj", "/CN=kubernetes"]);
    execFileSync("sh", ["-c", "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > api.ext"], { cwd: dir });
    ossl(["x509", "-req", "-in", "api.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "api.pem", "-days", "2", "-extfile", "api.ext"]);
    const server = createServer({ key: readFileSync(join(dir, "api.key")), cert: readFileSync(join(dir, "api.pem")) });
    const kube = new FakeKube(server, join(dir, "ca.pem"), dir);
    const expected = `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;
    server.on("request", (req, res) => {
      const url = new URL(req.url ?? "/", "https://x");
      const watch = url.searchParams.get("watch") === "true";
      kube.requests.push({ path: url.pathname, query: url.searchParams, authorization: req.headers.authorization, watch });
      if (url.pathname !== expected || url.searchParams.get("labelSelector") !== `kubernetes.io/service-name=${service}`) return kube.status(res, 404, "NotFound", "no such resource");
      if (watch) return kube.watch(res, Number(url.searchParams.get("resourceVersion")));
      if (kube.failNext && kube.failNext.times-- > 0) return kube.status(res, kube.failNext.status, "Forbidden", "endpointslices is forbidden for this service account");
      res.writeHead(200, { "Content-Type": "application/json" }).end(
        JSON.stringify({ kind: "EndpointSliceList", apiVersion: "discovery.k8s.io/v1", metadata: { resourceVersion: String(kube.rv) }, items: [...kube.slices.values()] }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return kube;
  }

  get url(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get resourceVersion(): number {
    return this.rv;
  }

  /** Applies a change and sends it to every open watch. */
  apply(type: "ADDED" | "MODIFIED" | "DELETED", slice: EndpointSlice): void {
    const name = slice.metadata!.name!;
    const object = { ...slice, metadata: { ...slice.metadata, resourceVersion: String(++this.rv) } };
    if (type === "DELETED") this.slices.delete(name);
    else this.slices.set(name, object);
    const event = { rv: this.rv, type, object };
    this.log.push(event);
    for (const w of this.watchers) w.res.write(JSON.stringify({ type, object }) + "\n");
  }

  /** A bookmark at the current version to every open watch. */
  bookmark(): void {
    const rv = ++this.rv;
    for (const w of this.watchers) w.res.write(JSON.stringify({ type: "BOOKMARK", object: { kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1", metadata: { resourceVersion: String(rv) } } }) + "\n");
  }

  /** Forgets history: a watch from an older version now gets 410 Gone. */
  compact(): void {
    this.compactedBelow = this.rv;
  }

  /** Breaks every open watch connection (as a restarted API server or a dropped proxy would). */
  dropWatches(): void {
    for (const w of this.watchers) w.res.socket?.destroy();
    this.watchers.clear();
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  private watch(res: ServerResponse, from: number): void {
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
    if (from < this.compactedBelow) {
      res.end(JSON.stringify({ type: "ERROR", object: { kind: "Status", apiVersion: "v1", status: "Failure", message: `too old resource version: ${from} (${this.compactedBelow})`, reason: "Expired", code: 410 } }) + "\n");
      return;
    }
    for (const e of this.log) if (e.rv > from) res.write(JSON.stringify({ type: e.type, object: e.object }) + "\n");
    const w = { res, from };
    this.watchers.add(w);
    res.on("close", () => this.watchers.delete(w));
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    res.writeHead(code, { "Content-Type": "application/json" }).end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code }));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An EndpointSlice of `service` with `endpoints` (address, ready, terminating, pod name) on port `api`. */
export function slice(name: string, service: string, port: number, endpoints: Array<{ ip: string; ready?: boolean; terminating?: boolean; pod: string }>): EndpointSlice {
  return {
    metadata: { name, labels: { "kubernetes.io/service-name": service } } as EndpointSlice["metadata"],
    addressType: "IPv4",
    ports: [{ name: "api", port, protocol: "TCP" }],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.ready ?? true, terminating: e.terminating ?? false },
      targetRef: { kind: "Pod", name: e.pod },
    })),
  };
}
