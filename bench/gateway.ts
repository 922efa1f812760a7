/**
 * What the fleet gateway's hop costs: the same sandbox reached directly and through a gateway
 * process in front of its daemon, interleaved in one run, for an exec round trip
 * (`spawn("true")` until its status) and for stdout throughput (`head -c 256 MiB /dev/zero`),
 * plus upload throughput (stdin of `cat`) and create → first `true` as diagnostics. Targets
 * (shared/TARGETS.md): ≤ 1.15× round trip, ≥ 90 % throughput.
 *
 * Run: `pnpm bench` (after the others), or `npx tsx bench/gateway.ts` once built (as root).
 * Writes its table into bench/RESULTS.md between the "gateway" markers. With
 * SBX_BENCH_GATEWAY_BASELINE set to another build's `dist/cli.js` (say main's, copied aside with
 * a node_modules holding bufferutil beside it), that gateway is measured too, interleaved with the
 * rest, so a change is compared with what it replaces in the same run.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Sandbox } from "../packages/client/src/index.js";
import { startDaemon } from "../packages/daemon/test/helpers/daemon.js";
import { startGateway, token, type TestGateway } from "../packages/gateway/test/helpers/fleet.js";

const RESULTS = new URL("./RESULTS.md", import.meta.url);
/** The floor of any hop: a process that relays TCP bytes to the daemon and understands nothing. */
const RELAY = `const net = require("net");
const [host, port] = process.argv[1].split(":");
const s = net.createServer((c) => { const u = net.connect(Number(port), host); c.setNoDelay(true); u.setNoDelay(true); c.pipe(u).pipe(c); c.on("error", () => u.destroy()); u.on("error", () => c.destroy()); });
s.listen(0, "127.0.0.1", () => console.log(s.address().port));`;
const STREAM_BYTES = 256 * 1024 * 1024;
const ROUND_TRIPS = 600;
const STREAMS = 10;
const UPLOAD_BYTES = 128 * 1024 * 1024;
const UPLOADS = 5;
const CREATES = 15;
const BASELINE = process.env.SBX_BENCH_GATEWAY_BASELINE;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;
const fmt = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms.toFixed(1));

/** user + system CPU seconds of a process so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssBytes(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
}

async function roundTrip(sb: Sandbox): Promise<number> {
  const started = performance.now();
  const p = await sb.spawn("true");
  const status = await p.status;
  if (status.code !== 0) throw new Error(`true exited with ${status.code}`);
  return performance.now() - started;
}

async function throughput(sb: Sandbox): Promise<number> {
  const started = performance.now();
  const p = await sb.spawn("head", { args: ["-c", String(STREAM_BYTES), "/dev/zero"], stderr: "null" });
  let n = 0;
  for await (const chunk of p.stdout!) n += chunk.byteLength;
  await p.status;
  if (n !== STREAM_BYTES) throw new Error(`read ${n} of ${STREAM_BYTES} bytes`);
  return STREAM_BYTES / ((performance.now() - started) / 1000) / 1e6;
}

/** MB/s into the stdin of `cat` (to /dev/null): the client's stream frames through the hop. */
async function upload(sb: Sandbox): Promise<number> {
  const chunk = new Uint8Array(256 * 1024);
  const started = performance.now();
  const p = await sb.spawn("cat", { stdin: "piped", stdout: "null", stderr: "null" });
  const writer = p.stdin!.getWriter();
  for (let n = 0; n < UPLOAD_BYTES; n += chunk.length) await writer.write(chunk);
  await writer.close();
  const status = await p.status;
  if (status.code !== 0) throw new Error(`cat exited with ${status.code}`);
  return UPLOAD_BYTES / ((performance.now() - started) / 1000) / 1e6;
}

async function createToTrue(opts: { url: string; token: string }): Promise<number> {
  const started = performance.now();
  const sb = await Sandbox.create(opts);
  await (await sb.spawn("true")).status;
  const ms = performance.now() - started;
  await sb.kill();
  return ms;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (sandboxes run as their own host uids)");
  const dir = mkdtempSync(join(tmpdir(), "sbx-bench-gateway-"));
  const tenant = token("bench-tenant");
  const operator = token("bench-operator");
  writeFileSync(join(dir, "tokens"), `${tenant}\n`);
  writeFileSync(join(dir, "operator"), `${operator}\n`);
  const loadStart = loadavg()[0]!.toFixed(2);
  const daemon = await startDaemon({ env: { SBX_TOKEN: operator }, config: { idPrefix: "b0", tokensFile: join(dir, "tokens"), warmPool: 0 } });
  const gwArgs = ["--quiet", "--tokens-file", join(dir, "tokens"), "--daemon-token-file", join(dir, "operator"), "--daemon", daemon.url];
  const gw = await startGateway(gwArgs);
  const base: TestGateway | null = BASELINE ? await startGateway(gwArgs, {}, BASELINE) : null;
  const relay = spawn(process.execPath, ["-e", RELAY, new URL(daemon.url).host], { stdio: ["ignore", "pipe", "inherit"] });
  const relayPort = await new Promise<string>((r) => relay.stdout!.once("data", (d) => r(String(d).trim())));
  const direct = { url: daemon.url, token: tenant };
  const viaGateway = { url: gw.url, token: tenant };
  const viaRelay = { url: `ws://127.0.0.1:${relayPort}`, token: tenant };
  try {
    await new Promise((r) => setTimeout(r, 500)); // the gateway's control link to the daemon
    const sb = await Sandbox.create({ ...direct, timeout: "30m" });
    const through = await Sandbox.connect(sb.id, viaGateway);
    const relayed = await Sandbox.connect(sb.id, viaRelay);
    const baseline = base ? await Sandbox.connect(sb.id, { url: base.url, token: tenant }) : null;
    const ways = [sb, through, relayed, ...(baseline ? [baseline] : [])];

    for (let i = 0; i < 30; i++) for (const w of ways) await roundTrip(w);
    const rt = { direct: [] as number[], gateway: [] as number[], relay: [] as number[], baseline: [] as number[] };
    const lists = [rt.direct, rt.gateway, rt.relay, rt.baseline];
    // Each process's CPU over the interleaved round trips is spent on its own share of them.
    const rtCpuBefore = { gateway: cpuSeconds(gw.proc.pid!), relay: cpuSeconds(relay.pid!), baseline: base ? cpuSeconds(base.proc.pid!) : 0 };
    for (let i = 0; i < ROUND_TRIPS; i++) {
      // Rotating which goes first, so none always follows another.
      for (let k = 0; k < ways.length; k++) {
        const j = (i + k) % ways.length;
        lists[j]!.push(await roundTrip(ways[j]!));
      }
    }

    const rtCpu = {
      gateway: cpuSeconds(gw.proc.pid!) - rtCpuBefore.gateway,
      relay: cpuSeconds(relay.pid!) - rtCpuBefore.relay,
      baseline: base ? cpuSeconds(base.proc.pid!) - rtCpuBefore.baseline : 0,
    };
    for (const w of ways) await throughput(w);
    const tp = { direct: [] as number[], gateway: [] as number[], relay: [] as number[], baseline: [] as number[] };
    let baselineCpu = 0;
    let gatewayCpu = 0;
    let relayCpu = 0;
    let gatewayRssPeak = 0;
    const rssBefore = rssBytes(gw.proc.pid!);
    for (let i = 0; i < STREAMS; i++) {
      tp.direct.push(await throughput(sb));
      const cpuBefore = cpuSeconds(gw.proc.pid!);
      const sampler = setInterval(() => (gatewayRssPeak = Math.max(gatewayRssPeak, rssBytes(gw.proc.pid!))), 20);
      tp.gateway.push(await throughput(through));
      clearInterval(sampler);
      gatewayCpu += cpuSeconds(gw.proc.pid!) - cpuBefore;
      const relayBefore = cpuSeconds(relay.pid!);
      tp.relay.push(await throughput(relayed));
      relayCpu += cpuSeconds(relay.pid!) - relayBefore;
      if (base && baseline) {
        const baseBefore = cpuSeconds(base.proc.pid!);
        tp.baseline.push(await throughput(baseline));
        baselineCpu += cpuSeconds(base.proc.pid!) - baseBefore;
      }
    }
    // Uploads, rotating which way goes first; CPU per way over its own uploads.
    for (const w of ways) await upload(w);
    const up = { direct: [] as number[], gateway: [] as number[], relay: [] as number[], baseline: [] as number[] };
    const upLists = [up.direct, up.gateway, up.relay, up.baseline];
    const upPids = [null, gw.proc.pid!, relay.pid!, base?.proc.pid ?? null];
    const upCpu = [0, 0, 0, 0];
    for (let i = 0; i < UPLOADS; i++) {
      for (let k = 0; k < ways.length; k++) {
        const j = (i + k) % ways.length;
        const pid = upPids[j];
        const before = pid ? cpuSeconds(pid) : 0;
        upLists[j]!.push(await upload(ways[j]!));
        if (pid) upCpu[j]! += cpuSeconds(pid) - before;
      }
    }
    await relayed.close();
    await baseline?.close();

    const creates = { direct: [] as number[], gateway: [] as number[] };
    for (let i = 0; i < CREATES; i++) {
      creates.direct.push(await createToTrue(direct));
      creates.gateway.push(await createToTrue(viaGateway));
    }
    await through.close();
    await sb.kill();

    const rtRatio = median(rt.gateway) / median(rt.direct);
    const tpRatio = median(tp.gateway) / median(tp.direct);
    const crRatio = median(creates.gateway) / median(creates.direct);
    const gib = (STREAMS * STREAM_BYTES) / 1024 ** 3;
    const upGib = (UPLOADS * UPLOAD_BYTES) / 1024 ** 3;
    const upRatio = median(up.gateway) / median(up.direct);
    const table = [
      `<!-- gateway:start (bench/gateway.ts, ${new Date().toISOString()}; ${cpus().length} cores; load ${loadStart} → ${loadavg()[0]!.toFixed(2)}) -->`,
      "## Through the fleet gateway",
      "",
      "One sandbox reached two ways in the same run, interleaved: directly (`Sandbox.create` on the daemon) and through an `sbx-gateway` process in front of that daemon (`Sandbox.connect` to the same id). Medians (p90; for throughput the 10th percentile, the slow tail). Targets: ≤ 1.15× round trip, ≥ 90 % throughput.",
      "",
      "| metric | through the gateway | direct (same run) | ratio | target | met |",
      "|---|---|---|---|---|---|",
      `| \`spawn("true")\` round trip (stdout/stderr piped), n=${ROUND_TRIPS} each | ${fmt(median(rt.gateway))} ms (p90 ${fmt(quantile(rt.gateway, 0.9))}) | ${fmt(median(rt.direct))} ms (p90 ${fmt(quantile(rt.direct, 0.9))}) | ${rtRatio.toFixed(2)}× | ≤ 1.15× | ${rtRatio <= 1.15 ? "yes" : "**no**"} |`,
      `| … floor of any hop: a bare TCP relay process in the gateway's place | ${fmt(median(rt.relay))} ms (p90 ${fmt(quantile(rt.relay, 0.9))}) |  | ${(median(rt.relay) / median(rt.direct)).toFixed(2)}× (gateway/relay ${(median(rt.gateway) / median(rt.relay)).toFixed(2)}×) |  |  |`,
      `| … CPU the hop takes per round trip: gateway / relay | ${((rtCpu.gateway / ROUND_TRIPS) * 1e6).toFixed(0)} / ${((rtCpu.relay / ROUND_TRIPS) * 1e6).toFixed(0)} µs |  |  |  |  |`,
      `| stdout of \`head -c 256 MiB /dev/zero\`, n=${STREAMS} each | ${median(tp.gateway).toFixed(0)} MB/s (p10 ${quantile(tp.gateway, 0.1).toFixed(0)}) | ${median(tp.direct).toFixed(0)} MB/s (p10 ${quantile(tp.direct, 0.1).toFixed(0)}) | ${(tpRatio * 100).toFixed(0)} % | ≥ 90 % | ${tpRatio >= 0.9 ? "yes" : "**no**"} |`,
      `| … floor of any hop: the bare TCP relay | ${median(tp.relay).toFixed(0)} MB/s (p10 ${quantile(tp.relay, 0.1).toFixed(0)}) |  | ${((median(tp.relay) / median(tp.direct)) * 100).toFixed(0)} % (gateway/relay ${((median(tp.gateway) / median(tp.relay)) * 100).toFixed(0)} %) |  |  |`,
      `| … CPU the hop takes per GiB streamed: gateway / relay; gateway peak RSS growth | ${(gatewayCpu / gib).toFixed(2)} / ${(relayCpu / gib).toFixed(2)} CPU-s/GiB; ${((gatewayRssPeak - rssBefore) / 1e6).toFixed(1)} MB |  |  |  |  |`,
      `| stdin of \`cat\` (upload) in 256 KiB writes, ${UPLOAD_BYTES / 1024 ** 2} MiB, n=${UPLOADS} each (diagnostic) | ${median(up.gateway).toFixed(0)} MB/s (p10 ${quantile(up.gateway, 0.1).toFixed(0)}) | ${median(up.direct).toFixed(0)} MB/s (p10 ${quantile(up.direct, 0.1).toFixed(0)}) | ${(upRatio * 100).toFixed(0)} % |  |  |`,
      `| … the bare relay; CPU per GiB uploaded: gateway / relay | ${median(up.relay).toFixed(0)} MB/s (p10 ${quantile(up.relay, 0.1).toFixed(0)}); ${(upCpu[1]! / upGib).toFixed(2)} / ${(upCpu[2]! / upGib).toFixed(2)} CPU-s/GiB |  | ${((median(up.relay) / median(up.direct)) * 100).toFixed(0)} % (gateway/relay ${((median(up.gateway) / median(up.relay)) * 100).toFixed(0)} %) |  |  |`,
      ...(base
        ? [
            `| … the same through the baseline gateway build (\`SBX_BENCH_GATEWAY_BASELINE\`), round trip; its CPU per round trip | ${fmt(median(rt.baseline))} ms (p90 ${fmt(quantile(rt.baseline, 0.9))}); ${((rtCpu.baseline / ROUND_TRIPS) * 1e6).toFixed(0)} µs |  | ${(median(rt.baseline) / median(rt.direct)).toFixed(2)}× (this build / baseline ${(median(rt.gateway) / median(rt.baseline)).toFixed(2)}×) |  |  |`,
            `| … the same through the baseline gateway build, stdout; its CPU per GiB | ${median(tp.baseline).toFixed(0)} MB/s (p10 ${quantile(tp.baseline, 0.1).toFixed(0)}); ${(baselineCpu / gib).toFixed(2)} CPU-s/GiB |  | ${((median(tp.baseline) / median(tp.direct)) * 100).toFixed(0)} % (this build / baseline ${((median(tp.gateway) / median(tp.baseline)) * 100).toFixed(0)} %) |  |  |`,
            `| … the same through the baseline gateway build, upload; its CPU per GiB | ${median(up.baseline).toFixed(0)} MB/s (p10 ${quantile(up.baseline, 0.1).toFixed(0)}); ${(upCpu[3]! / upGib).toFixed(2)} CPU-s/GiB |  | ${((median(up.baseline) / median(up.direct)) * 100).toFixed(0)} % (this build / baseline ${((median(up.gateway) / median(up.baseline)) * 100).toFixed(0)} %) |  |  |`,
          ]
        : []),
      `| \`Sandbox.create()\` → first \`spawn("true")\`, cold (new connection, placement, create), n=${CREATES} each (diagnostic) | ${fmt(median(creates.gateway))} ms (p90 ${fmt(quantile(creates.gateway, 0.9))}) | ${fmt(median(creates.direct))} ms (p90 ${fmt(quantile(creates.direct, 0.9))}) | ${crRatio.toFixed(2)}× |  |  |`,
      "",
      "The hop: the gateway reads both of its sides' WebSocket frames itself. It parses each JSON call to route it (and checks it against the schema, as the daemon does again); a client's stream frames go to the daemon as the bytes the client sent, re-masked in place, and a daemon's frames (answers, notifications, stream data) go to the client as the bytes the daemon sent, the gateway reading only an answer's id off its front and a stream frame's five-byte header; each socket's frames of one tick leave in one write. For a create it first asks the daemon for fresh capacity figures (`daemon.info`) and opens the client's own connection to that daemon. CPU is user + system time of the process from /proc, over the whole phase. The baseline rows (when `SBX_BENCH_GATEWAY_BASELINE` names another build) measure that build the same way in the same run.",
      "<!-- gateway:end -->",
    ].join("\n");
    const current = readFileSync(RESULTS, "utf8");
    const marked = /<!-- gateway:start[\s\S]*?<!-- gateway:end -->/;
    writeFileSync(RESULTS, marked.test(current) ? current.replace(marked, table) : `${current.trimEnd()}\n\n${table}\n`);
    console.log(table);
  } finally {
    relay.kill();
    await gw.stop();
    await base?.stop();
    await daemon[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
