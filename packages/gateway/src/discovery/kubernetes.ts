import type { Logger } from "../log.js";
import type { DaemonEndpoint, Discovery } from "./discovery.js";
import { endpointsOf, sameEndpoints, type EndpointSlice } from "./endpoint-slices.js";
import { KubeApi, KubeApiError, type KubeApiOptions } from "./kube-api.js";

/** Where the API server is, how to authenticate to it, and which Service's EndpointSlices to follow. */
export interface KubernetesDiscoveryOptions extends KubeApiOptions {
  namespace: string;
  /** The headless Service in front of the daemons' DaemonSet. */
  service: string;
  /** The Service port name of the daemons' API (null: the slice's first port). */
  portName: string | null;
  log: Logger;
}

/** Errors in a row before the backoff reaches its longest wait. */
const BACKOFF_MS = [250, 500, 1000, 2000, 5000, 10_000];
/** Slices of one Service the gateway keeps (Kubernetes puts up to 100 endpoints in each). */
const MAX_SLICES = 1000;

/**
 * The daemons behind a headless Service, from its EndpointSlices: one list, then a watch
 * from the list's resourceVersion that stays open. When a watch ends (the server's timeout,
 * a dropped connection) the next one resumes from the last resourceVersion seen (events and
 * bookmarks); only when the server says that version is gone (410) is the list read again.
 * Nothing is read on a timer.
 */
export class KubernetesDiscovery implements Discovery {
  private readonly api: KubeApi;
  private readonly slices = new Map<string, EndpointSlice>();
  private resourceVersion: string | null = null;
  private current: DaemonEndpoint[] = [];
  private onChange: ((endpoints: DaemonEndpoint[]) => void) | null = null;
  private readonly abort = new AbortController();

  constructor(private readonly opts: KubernetesDiscoveryOptions) {
    this.api = new KubeApi(opts);
  }

  start(onChange: (endpoints: DaemonEndpoint[]) => void): void {
    this.onChange = onChange;
    void this.run();
  }

  close(): void {
    this.onChange = null;
    this.abort.abort();
  }

  describe(): string {
    return `EndpointSlices of service ${this.opts.namespace}/${this.opts.service}`;
  }

  private get path(): string {
    const selector = encodeURIComponent(`kubernetes.io/service-name=${this.opts.service}`);
    return `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(this.opts.namespace)}/endpointslices?labelSelector=${selector}`;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      try {
        if (this.resourceVersion === null) await this.list();
        const started = Date.now();
        await this.watch();
        failures = 0;
        // A server that ends watches at once must not make this a tight loop.
        if (Date.now() - started < 1000) await this.sleep(1000);
      } catch (err) {
        if (this.abort.signal.aborted) return;
        if (err instanceof KubeApiError && err.status === 410) this.resourceVersion = null;
        const wait = BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)]!;
        this.opts.log.warn(`kubernetes discovery: ${(err as Error).message}; again in ${wait} ms${this.resourceVersion ? ` from resourceVersion ${this.resourceVersion}` : " with a fresh list"}`);
        await this.sleep(wait);
      }
    }
  }

  private async list(): Promise<void> {
    const list = await this.api.getJson(this.path, this.abort.signal);
    if (!Array.isArray(list?.items) || typeof list?.metadata?.resourceVersion !== "string") throw new Error("the EndpointSlice list has no items or resourceVersion");
    this.slices.clear();
    for (const slice of list.items.slice(0, MAX_SLICES) as EndpointSlice[]) this.slices.set(slice.metadata?.name ?? "", slice);
    this.resourceVersion = list.metadata.resourceVersion;
    this.publish();
  }

  private async watch(): Promise<void> {
    // The server ends each watch after timeoutSeconds (spread, so replicas do not renew together).
    const timeout = 240 + Math.floor(Math.random() * 120);
    const path = `${this.path}&watch=true&allowWatchBookmarks=true&timeoutSeconds=${timeout}&resourceVersion=${encodeURIComponent(this.resourceVersion!)}`;
    await this.api.watch(path, this.abort.signal, (event) => this.onEvent(event));
  }

  private onEvent(event: { type?: string; object?: any }): void {
    const { type, object } = event ?? {};
    if (type === "ERROR") {
      const code = Number(object?.code);
      throw new KubeApiError(`the watch reported ${object?.reason ?? "an error"} (${code}): ${object?.message ?? ""}`, code);
    }
    const version = object?.metadata?.resourceVersion;
    if (typeof version === "string") this.resourceVersion = version;
    if (type === "BOOKMARK") return;
    const name = object?.metadata?.name;
    if (typeof name !== "string") return;
    if (type === "DELETED") this.slices.delete(name);
    else if ((type === "ADDED" || type === "MODIFIED") && (this.slices.has(name) || this.slices.size < MAX_SLICES)) this.slices.set(name, object);
    this.publish();
  }

  private publish(): void {
    const next = endpointsOf(this.slices.values(), this.opts.portName);
    if (sameEndpoints(next, this.current)) return;
    this.current = next;
    this.onChange?.(next.map((e) => ({ ...e })));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.abort.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.abort.signal.addEventListener("abort", done, { once: true });
    });
  }
}
