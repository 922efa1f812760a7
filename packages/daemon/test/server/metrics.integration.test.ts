import { beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { startDaemon } from "../helpers/daemon.js";
import { useDaemon } from "../helpers/fixtures.js";

/**
 * Operating sbx as a service (issue 16 item 10): a Prometheus endpoint on its own address (off
 * unless asked for) and JSON log lines that carry the request id and tenant of the call that
 * caused them.
 */

const daemon = useDaemon({ args: ["--metrics", "127.0.0.1:0", "--log-format", "json", "--warm-pool", "1"] });
let metricsUrl: string;

/** The value of one sample (`name{labels}`) in an exposition, 0 when absent. */
async function sample(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? "").split(",").filter(Boolean);
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(m[3]);
  }
  return 0;
}

beforeAll(() => {
  const m = /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(daemon.logs());
  metricsUrl = m![1]!;
});

describe("/metrics", () => {
  it("counts creates by tenant and source, spawns, stream bytes, refusals by kind, OOM kills and ends by reason", async () => {
    const creates = await sample("sbx_sandbox_creates_total", { tenant: "default", source: "launch" });
    const spawns = await sample("sbx_process_spawns_total");
    const bytesIn = await sample("sbx_stream_bytes_total", { direction: "in" });
    const bytesOut = await sample("sbx_stream_bytes_total", { direction: "out" });
    // A disk size the warm pool holds none of: launched (the pool serves any memory and cpus, not another disk).
    await using sb = await Sandbox.create({ ...daemon.opts, memory: "128MiB", disk: "64MiB", allowNet: ["example.invalid"] });
    expect(await sample("sbx_sandbox_creates_total", { tenant: "default", source: "launch" })).toBe(creates + 1);
    expect(await sample("sbx_sandbox_create_seconds_count", { source: "launch" })).toBeGreaterThanOrEqual(1);
    expect(await sample("sbx_sandboxes", { state: "owned" })).toBe(1);
    await sb.fs.writeFile("blob", new Uint8Array(100_000));
    expect(await sb.sh`cat blob | wc -c`.text()).toMatch(/^100000\n?$/);
    expect(await sample("sbx_process_spawns_total")).toBe(spawns + 1);
    expect(await sample("sbx_stream_bytes_total", { direction: "in" })).toBeGreaterThanOrEqual(bytesIn + 100_000);
    expect(await sample("sbx_stream_bytes_total", { direction: "out" })).toBeGreaterThan(bytesOut);
    // A host not in allowNet: refused, counted under its kind (never under the host's name).
    await sb.sh`curl -s -o /dev/null http://not-allowed.test/`.noThrow();
    expect(await sample("sbx_egress_requests_total", { decision: "refused", kind: "not-allowed" })).toBeGreaterThanOrEqual(1);
    const hog = await sb.spawn("python3", { args: ["-c", "x = bytearray(512 << 20)"] }).then((p) => p.status);
    expect(hog.oom).toBe(true);
    expect(await sample("sbx_oom_kills_total")).toBeGreaterThanOrEqual(1);
    // Running sandboxes count as of the daemon's last sample (every second): a scrape reads no cgroup file.
    const deadline = Date.now() + 5000;
    while ((await sample("sbx_tenant_cpu_seconds_total", { tenant: "default" })) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await sample("sbx_tenant_cpu_seconds_total", { tenant: "default" })).toBeGreaterThan(0);
    await sb.kill();
    expect(await sample("sbx_sandbox_ends_total", { reason: "killed" })).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it("serves nothing else, and the API port serves no metrics", async () => {
    expect((await fetch(metricsUrl.replace("/metrics", "/"))).status).toBe(404);
    expect((await fetch(`${daemon.url.replace("ws://", "http://")}/metrics`)).status).toBe(426);
    expect(await sample("sbx_daemon_process_resident_memory_bytes")).toBeGreaterThan(0);
  });

  it("shows the daemon's heap tuning at work: 256 MiB of stdout set off few major GCs (the stream's buffers die in scavenges)", async () => {
    await using sb = await Sandbox.create(daemon.opts);
    const majors = () => sample("sbx_daemon_nodejs_gc_duration_seconds_count", { kind: "major" });
    const before = await majors();
    const p = await sb.spawn("head", { args: ["-c", String(256 << 20), "/dev/zero"], stderr: "null" });
    const reader = p.stdout!.getReader();
    let n = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) n += r.value.byteLength;
    expect(n).toBe(256 << 20);
    expect((await p.status).success).toBe(true);
    // With V8's own growth (~16 MB of room over a ~10 MB heap) the same transfer set off 15-20.
    expect(await majors() - before).toBeLessThanOrEqual(8);
  }, 60_000);

  it("is refused at start with a bad address, naming the flag", async () => {
    await expect(startDaemon({ args: ["--metrics", "localhost"] })).rejects.toThrow("--metrics 'localhost' is not HOST:PORT");
    await expect(startDaemon({ args: ["--log-format", "xml"] })).rejects.toThrow('--log-format: must be "text" or "json"');
  });
});

describe("--log-format json", () => {
  it("writes one JSON object per line; a call's lines carry its request id and tenant, and name the sandbox", async () => {
    const before = daemon.logs().length;
    const sb = await Sandbox.create(daemon.opts);
    await sb.kill();
    await new Promise((r) => setTimeout(r, 300));
    const lines = daemon.logs().slice(before).split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const started = lines.find((l) => /started/.test(l.msg) && l.sandbox === sb.id);
    expect(started).toMatchObject({ level: "info", tenant: "default", sandbox: sb.id });
    expect(started.request).toMatch(/^c\d+-\d+$/);
    expect(Date.parse(started.time)).not.toBeNaN();
  });
});
