import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** What the metrics read from the daemon at scrape time (figures it keeps anyway). */
export interface MetricsSource {
  /** Live sandboxes: handed to an owner, or waiting unowned in the warm pool. */
  sandboxes(): { owned: number; pooled: number };
  /** Each tenant's CPU-seconds and GB-seconds so far: ended sandboxes' plus running ones'. */
  tenantUsage(): Map<string, { cpuSeconds: number; gbSeconds: number }>;
}

/**
 * The daemon's Prometheus metrics (prom-client: the exposition format, histograms and the
 * process's own figures, maintained by the Prometheus community). Counters are bumped where
 * things happen; gauges and per-tenant totals are read when scraped, so an idle daemon does no
 * work for them. Labels are bounded: tenants (from the config), end reasons, refusal kinds.
 */
export class DaemonMetrics {
  readonly registry = new Registry();
  readonly creates = new Counter({ name: "sbx_sandbox_creates_total", help: "Sandboxes handed to an owner, by tenant and where they came from (pool or launch).", labelNames: ["tenant", "source"] as const, registers: [this.registry] });
  readonly createErrors = new Counter({ name: "sbx_sandbox_create_errors_total", help: "sandbox.create calls that failed, by error code.", labelNames: ["code"] as const, registers: [this.registry] });
  readonly createSeconds = new Histogram({
    name: "sbx_sandbox_create_seconds",
    help: "Time from a sandbox.create call to its answer, by where the sandbox came from.",
    labelNames: ["source"] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly ends = new Counter({ name: "sbx_sandbox_ends_total", help: "Sandboxes that ended, by reason (killed, timeout, session, error).", labelNames: ["reason"] as const, registers: [this.registry] });
  readonly spawns = new Counter({ name: "sbx_process_spawns_total", help: "Processes started in sandboxes (process.spawn calls that succeeded).", registers: [this.registry] });
  readonly oomKills = new Counter({ name: "sbx_oom_kills_total", help: "Processes the kernel's OOM killer ended inside sandboxes.", registers: [this.registry] });
  readonly streamBytes = new Counter({ name: "sbx_stream_bytes_total", help: "Bytes of stream frames between clients and the daemon, by direction (in: from clients, out: to clients).", labelNames: ["direction"] as const, registers: [this.registry] });
  /** The two directions bound once: a frame's count is one addition, no label lookup. */
  readonly bytesIn = this.streamBytes.labels({ direction: "in" });
  readonly bytesOut = this.streamBytes.labels({ direction: "out" });
  readonly egress = new Counter({
    name: "sbx_egress_requests_total",
    help: "Egress connections and requests decided by sandboxes' proxies, by decision and refusal kind.",
    labelNames: ["decision", "kind"] as const,
    registers: [this.registry],
  });

  constructor(source: MetricsSource) {
    collectDefaultMetrics({ register: this.registry, prefix: "sbx_daemon_" });
    new Gauge({
      name: "sbx_sandboxes",
      help: "Live sandboxes by state: owned (handed out) or pooled (started ahead of demand).",
      labelNames: ["state"] as const,
      registers: [this.registry],
      collect() {
        const { owned, pooled } = source.sandboxes();
        this.set({ state: "owned" }, owned);
        this.set({ state: "pooled" }, pooled);
      },
    });
    const perTenant = (name: string, help: string, pick: (u: { cpuSeconds: number; gbSeconds: number }) => number) =>
      new Counter({
        name,
        help,
        labelNames: ["tenant"] as const,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [tenant, u] of source.tenantUsage()) this.inc({ tenant }, pick(u));
        },
      });
    perTenant("sbx_tenant_cpu_seconds_total", "CPU-seconds used by each tenant's sandboxes since the daemon started (ended ones plus running ones so far).", (u) => u.cpuSeconds);
    perTenant("sbx_tenant_memory_gb_seconds_total", "Memory GB-seconds used by each tenant's sandboxes.", (u) => u.gbSeconds);
  }
}

/**
 * Serves GET /metrics on its own address (config `metrics.listen`, off by default): keep it on
 * loopback or a network only the monitoring system reaches; it carries no token.
 */
export function startMetricsServer(metrics: DaemonMetrics, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("sbx metrics: GET /metrics\n");
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { "Content-Type": metrics.registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { "Content-Type": "text/plain" }).end(`${err.message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
