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
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
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

interface Way {
  name: string;
  sb: Sandbox;
  /** The hop's processes (none for direct). */
  pids: number[];
  rt: number[];
  tp: number[];
  up: number[];
  cpu: { rt: number; tp: number; up: number };
  rssPeak: number;
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
  writeFileSync(join(dir, "own.json"), JSON.stringify({ nativeRelay: false }));
  const own = await startGateway([...gwArgs, "--config", join(dir, "own.json")]);
  const base: TestGateway | null = BASELINE ? await startGateway(gwArgs, {}, BASELINE) : null;
  const relay = spawn(process.execPath, ["-e", RELAY, new URL(daemon.url).host], { stdio: ["ignore", "pipe", "inherit"] });
  const relayPort = await new Promise<string>((r) => relay.stdout!.once("data", (d) => r(String(d).trim())));
  // The cheapest hop this machine allows: the same relay in C, epoll + splice (probes/relay.c).
  const nativeBin = join(dir, "relay");
  execFileSync("cc", ["-O2", "-o", nativeBin, fileURLToPath(new URL("./probes/relay.c", import.meta.url))]);
  const daemonAddr = new URL(daemon.url);
  const native = spawn(nativeBin, [daemonAddr.hostname, daemonAddr.port], { stdio: ["ignore", "pipe", "inherit"] });
  const nativePort = await new Promise<string>((r) => native.stdout!.once("data", (d) => r(String(d).trim())));
  const direct = { url: daemon.url, token: tenant };
  const viaGateway = { url: gw.url, token: tenant };
  try {
    await new Promise((r) => setTimeout(r, 500)); // the gateways' control links to the daemon
    const sb = await Sandbox.create({ ...direct, timeout: "30m" });
    // A connection bound to the sandbox (the SDK binds Sandbox.connect's): the gateway relays it natively once routed.
    const bound = { url: `${gw.url}/?bind=${sb.id}`, token: tenant };
    const relayOf = (pid: number) => Number(execFileSync("pgrep", ["-P", String(pid), "sbx-gateway-rel"], { encoding: "utf8" }).trim());
    const ways: Way[] = [
      { name: "direct", sb, pids: [] },
      { name: "gateway", sb: await Sandbox.connect(sb.id, bound), pids: [gw.proc.pid!, relayOf(gw.proc.pid!)] },
      { name: "own", sb: await Sandbox.connect(sb.id, { url: own.url, token: tenant }), pids: [own.proc.pid!] },
      { name: "relay", sb: await Sandbox.connect(sb.id, { url: `ws://127.0.0.1:${relayPort}`, token: tenant }), pids: [relay.pid!] },
      { name: "native", sb: await Sandbox.connect(sb.id, { url: `ws://127.0.0.1:${nativePort}`, token: tenant }), pids: [native.pid!] },
      ...(base ? [{ name: "baseline", sb: await Sandbox.connect(sb.id, { url: base.url, token: tenant }), pids: [base.proc.pid!] }] : []),
    ].map((w) => ({ ...w, rt: [], tp: [], up: [], cpu: { rt: 0, tp: 0, up: 0 }, rssPeak: 0 }));
    const way = (name: string) => ways.find((w) => w.name === name)!;
    const cpuOf = (w: Way) => w.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);

    /** Runs `measure` on every way `rounds` times, rotating which goes first so none always follows another, with each way's CPU over its own runs. */
    const phase = async (rounds: number, kind: "rt" | "tp" | "up", measure: (sb: Sandbox) => Promise<number>) => {
      for (const w of ways) await measure(w.sb);
      for (let i = 0; i < rounds; i++) {
        for (let k = 0; k < ways.length; k++) {
          const w = ways[(i + k) % ways.length]!;
          const before = cpuOf(w);
          const sampler = kind === "tp" && w.pids.length > 0 ? setInterval(() => (w.rssPeak = Math.max(w.rssPeak, rssBytes(w.pids[0]!))), 20) : null;
          w[kind].push(await measure(w.sb));
          if (sampler) clearInterval(sampler);
          w.cpu[kind] += cpuOf(w) - before;
        }
      }
    };
    for (let i = 0; i < 30; i++) for (const w of ways) await roundTrip(w.sb);
    const rssBefore = rssBytes(gw.proc.pid!);
    await phase(ROUND_TRIPS, "rt", roundTrip);
    await phase(STREAMS, "tp", throughput);
    await phase(UPLOADS, "up", upload);
    for (const w of ways.slice(1)) await w.sb.close();

    const creates = { direct: [] as number[], gateway: [] as number[] };
    for (let i = 0; i < CREATES; i++) {
      creates.direct.push(await createToTrue(direct));
      creates.gateway.push(await createToTrue(viaGateway));
    }
    await sb.kill();

    const d = way("direct");
    const g = way("gateway");
    const rtRatio = median(g.rt) / median(d.rt);
    const tpRatio = median(g.tp) / median(d.tp);
    const crRatio = median(creates.gateway) / median(creates.direct);
    const gib = (STREAMS * STREAM_BYTES) / 1024 ** 3;
    const upGib = (UPLOADS * UPLOAD_BYTES) / 1024 ** 3;
    const upRatio = median(g.up) / median(d.up);
    const rtRow = (w: Way, what: string) =>
      `| … ${what} | ${fmt(median(w.rt))} ms (p90 ${fmt(quantile(w.rt, 0.9))}); CPU ${((w.cpu.rt / ROUND_TRIPS) * 1e6).toFixed(0)} µs per round trip |  | ${(median(w.rt) / median(d.rt)).toFixed(2)}× |  |  |`;
    const tpRow = (w: Way, what: string) =>
      `| … ${what} | ${median(w.tp).toFixed(0)} MB/s (p10 ${quantile(w.tp, 0.1).toFixed(0)}); CPU ${(w.cpu.tp / gib).toFixed(2)} s/GiB |  | ${((median(w.tp) / median(d.tp)) * 100).toFixed(0)} % |  |  |`;
    const upRow = (w: Way, what: string) =>
      `| … ${what} | ${median(w.up).toFixed(0)} MB/s (p10 ${quantile(w.up, 0.1).toFixed(0)}); CPU ${(w.cpu.up / upGib).toFixed(2)} s/GiB |  | ${((median(w.up) / median(d.up)) * 100).toFixed(0)} % |  |  |`;
    const others: Array<[string, string]> = [
      ["own", "the gateway's own path (a connection it does not relay: `nativeRelay: false`)"],
      ["relay", "floor of any hop: a bare Node TCP relay process in the gateway's place"],
      ["native", "floor of a native hop: a bare C relay (epoll + splice, `bench/probes/relay.c`)"],
      ...(base ? [["baseline", "the baseline gateway build (`SBX_BENCH_GATEWAY_BASELINE`)"] as [string, string]] : []),
    ];
    const table = [
      `<!-- gateway:start (bench/gateway.ts, ${new Date().toISOString()}; ${cpus().length} cores; load ${loadStart} → ${loadavg()[0]!.toFixed(2)}) -->`,
      "## Through the fleet gateway",
      "",
      "One sandbox reached several ways in the same run, interleaved: directly (`Sandbox.create` on the daemon); through an `sbx-gateway` in front of that daemon on a connection bound to the sandbox (`Sandbox.connect`, which the SDK binds: the gateway routes it, then hands it to its native relay); through a second gateway with the relay off (its own path, which every unbound connection takes); and through two bare relays as floors. Medians (p90; for throughput the 10th percentile, the slow tail). CPU is user + system time of the hop's processes (for the gateway: its Node process and its relay) from /proc, over each way's own runs. Targets: ≤ 1.15× round trip, ≥ 90 % throughput.",
      "",
      "| metric | through the gateway | direct (same run) | ratio | target | met |",
      "|---|---|---|---|---|---|",
      `| \`spawn("true")\` round trip (stdout/stderr piped), n=${ROUND_TRIPS} each | ${fmt(median(g.rt))} ms (p90 ${fmt(quantile(g.rt, 0.9))}); CPU ${((g.cpu.rt / ROUND_TRIPS) * 1e6).toFixed(0)} µs per round trip | ${fmt(median(d.rt))} ms (p90 ${fmt(quantile(d.rt, 0.9))}) | ${rtRatio.toFixed(2)}× | ≤ 1.15× | ${rtRatio <= 1.15 ? "yes" : "**no**"} |`,
      ...others.map(([n, what]) => rtRow(way(n), what)),
      `| stdout of \`head -c 256 MiB /dev/zero\`, n=${STREAMS} each | ${median(g.tp).toFixed(0)} MB/s (p10 ${quantile(g.tp, 0.1).toFixed(0)}); CPU ${(g.cpu.tp / gib).toFixed(2)} s/GiB; gateway peak RSS ${(g.rssPeak / 1e6).toFixed(1)} MB (${(rssBefore / 1e6).toFixed(1)} before) | ${median(d.tp).toFixed(0)} MB/s (p10 ${quantile(d.tp, 0.1).toFixed(0)}) | ${(tpRatio * 100).toFixed(0)} % | ≥ 90 % | ${tpRatio >= 0.9 ? "yes" : "**no**"} |`,
      ...others.map(([n, what]) => tpRow(way(n), what)),
      `| stdin of \`cat\` (upload) in 256 KiB writes, ${UPLOAD_BYTES / 1024 ** 2} MiB, n=${UPLOADS} each (diagnostic) | ${median(g.up).toFixed(0)} MB/s (p10 ${quantile(g.up, 0.1).toFixed(0)}); CPU ${(g.cpu.up / upGib).toFixed(2)} s/GiB | ${median(d.up).toFixed(0)} MB/s (p10 ${quantile(d.up, 0.1).toFixed(0)}) | ${(upRatio * 100).toFixed(0)} % |  |  |`,
      ...others.map(([n, what]) => upRow(way(n), what)),
      `| \`Sandbox.create()\` → first \`spawn("true")\`, cold (new connection, placement, create), n=${CREATES} each (diagnostic) | ${fmt(median(creates.gateway))} ms (p90 ${fmt(quantile(creates.gateway, 0.9))}) | ${fmt(median(creates.direct))} ms (p90 ${fmt(quantile(creates.direct, 0.9))}) | ${crRatio.toFixed(2)}× |  |  |`,
      "",
      "The gateway's own path reads both of its sides' WebSocket frames itself: it parses each JSON call to route it; a client's stream frames go to the daemon re-masked in place, a daemon's frames go to the client as the bytes the daemon sent, the gateway reading only an answer's id and a stream frame's five-byte header. A bound connection (`bind=` in its URL, held to its one sandbox by the daemon) takes that path only until it is routed and quiet; then its two sockets go to `sbx-gateway-relay` (packages/gateway/native/relay.c), which moves their bytes in one epoll loop, reading only the daemon's frame headers (to put a \"host lost\" farewell between two frames). For a create the gateway first asks the daemon for fresh capacity figures (`daemon.info`) and opens the client's own connection to that daemon.",
      "<!-- gateway:end -->",
    ].join("\n");
    const current = readFileSync(RESULTS, "utf8");
    const marked = /<!-- gateway:start[\s\S]*?<!-- gateway:end -->/;
    writeFileSync(RESULTS, marked.test(current) ? current.replace(marked, table) : `${current.trimEnd()}\n\n${table}\n`);
    console.log(table);
  } finally {
    relay.kill();
    native.kill();
    await gw.stop();
    await own.stop();
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
