/**
 * A well-behaved sandbox's `true` round trip while another tenant's sandbox (or client) runs
 * each hostile workload, beside its idle median in the same run, and the daemon's RSS growth.
 * Target (shared/TARGETS.md): ≤ 2× idle, daemon RSS growth ≤ 200 MB.
 *
 * Run: `pnpm bench` (after run.mjs), or `npx tsx bench/neighbours.ts` once built. Writes its
 * table into bench/RESULTS.md between the "neighbours" markers.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { gzipSync } from "node:zlib";
import { Sandbox } from "../packages/client/src/index.js";
import { startDaemon } from "../packages/daemon/test/helpers/daemon.js";
import { runBash } from "../packages/daemon/test/helpers/bash.js";
import { duringAttack, type NeighbourReport } from "../packages/daemon/test/helpers/neighbour.js";
import { startUpstreams } from "../packages/daemon/test/helpers/upstreams.js";

// ws is the daemon's dependency, not the workspace root's.
const WebSocket = createRequire(new URL("../packages/daemon/package.json", import.meta.url))("ws") as typeof import("ws").default;
const RESULTS = new URL("./RESULTS.md", import.meta.url);
const OTHER = "bench-neighbour-tenant-token-0123456789";
const FLOOD_READER = `
import { Sandbox } from ${JSON.stringify(new URL("../packages/client/dist/index.js", import.meta.url).pathname)};
const [url, token, id] = process.argv.slice(1);
const sb = await Sandbox.connect(id, { url, token });
const p = await sb.spawn("head", { args: ["-c", "4294967296", "/dev/zero"], stderr: "null" });
let n = 0;
for await (const chunk of p.stdout) n += chunk.length;
console.log(n);
process.exit(n === 4294967296 ? 0 : 1);
`;
const SINK = `const s = require("http").createServer((q, r) => { q.resume(); q.on("end", () => r.end("ok")); });
s.listen(0, "127.0.0.1", () => console.log(s.address().port));`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (sandboxes run as their own host uids)");
  const up = await startUpstreams();
  const dir = mkdtempSync(join(tmpdir(), "sbx-bench-neighbours-"));
  writeFileSync(join(dir, "ca.pem"), up.caPem);
  const sink = spawn(process.execPath, ["-e", SINK], { stdio: ["ignore", "pipe", "inherit"] });
  const sinkPort = await new Promise<string>((r) => sink.stdout!.once("data", (d) => r(String(d).trim())));
  const daemon = await startDaemon({
    config: { tokens: [OTHER], egress: { resolve: { ...up.resolve, "sink.example.test": `127.0.0.1:${sinkPort}` }, extraCaCerts: [join(dir, "ca.pem")] } },
    args: ["--warm-pool", "0"],
  });
  const pid = daemon.proc.pid!;
  const neighbour = await Sandbox.create({ url: daemon.url, token: OTHER, timeout: "30m" });
  // Each workload runs in a fresh attacker sandbox, killed afterwards (a fork bomb leaves it unusable).
  const makeAttacker = async () => {
    const sb = await Sandbox.create({ ...daemon.opts, timeout: "30m", memory: "256MiB", allowNet: ["sink.example.test"], secrets: { KEY: { hosts: ["api.openai.com"], value: "sk-bench-0123456789" } } });
    await sb.fs.writeFile("/tmp/bomb.bin", bomb);
    await sb.fs.writeFile("/tmp/stacked.bin", stacked);
    await sb.fs.writeFile("/tmp/big.bin", big);
    return sb;
  };
  const bomb = gzipSync(Buffer.alloc(80 << 20));
  let stacked = gzipSync(Buffer.alloc(4 << 20));
  for (let i = 0; i < 600; i++) stacked = gzipSync(stacked, { level: 0 });
  const big = gzipSync(randomBytes(15 << 20), { level: 1 });
  const curls = (file: string, coding: string, n: number, url: string) =>
    `for i in $(seq ${n}); do curl -sS -o /dev/null -H "Content-Encoding: ${coding}" --data-binary @${file} ${url} & done; wait`;
  const deaf = async () => {
    const ws = new WebSocket(daemon.url, { headers: { Authorization: `Bearer ${daemon.token}` }, perMessageDeflate: false });
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    ws.pause();
    return ws;
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const attacks: Array<[string, (attacker: Sandbox) => Promise<unknown>]> = [
    ["fork bomb (cgroup pids cap)", async (attacker) => {
      await attacker.spawn("bash", { args: ["-c", ":(){ :|:& };:"], stdout: "null", stderr: "null" });
      await sleep(4000);
    }],
    ["memory hog (OOM in a 256 MiB cgroup)", (attacker) => runBash(attacker, "python3 -c 'b = bytearray(1 << 30)' || true; for i in 1 2 3; do python3 -c 'b = bytearray(1 << 30)'; done; true")],
    ["disk fill (sandbox's own image)", (attacker) => runBash(attacker, "dd if=/dev/zero of=/tmp/fill bs=1M count=2048 2>/dev/null; rm -f /tmp/fill")],
    ["stdout flood read by its client (4 GiB)", async (attacker) => {
      // Read by a client process of its own: this process measures, it must not be the one busy reading.
      const reader = spawn(process.execPath, ["--input-type=module", "-e", FLOOD_READER, daemon.url, daemon.token, attacker.id], { stdio: ["ignore", "pipe", "inherit"] });
      const out: Buffer[] = [];
      reader.stdout!.on("data", (d: Buffer) => out.push(d));
      const code = await new Promise((r) => reader.once("exit", r));
      if (code !== 0) throw new Error(`the reader exited with ${code}`);
    }],
    ["1000 idle proxy connections", (attacker) => runBash(attacker, "python3 -c 'import socket, time\nss = [socket.create_connection((\"127.0.0.1\", 3128)) for _ in range(1000)]\ntime.sleep(3)'")],
    ["600 stacked content codings × 40", (attacker) => runBash(attacker, curls("/tmp/stacked.bin", Array(601).fill("gzip").join(", "), 40, "https://api.openai.com/x"))],
    ["decompression bombs × 12 (80 MiB each)", (attacker) => runBash(attacker, curls("/tmp/bomb.bin", "gzip", 12, "https://api.openai.com/x"))],
    ["15 MiB compressed bodies × 24", (attacker) => runBash(attacker, curls("/tmp/big.bin", "gzip", 24, "http://sink.example.test/"))],
    ["client stops reading: 28,200 rpc.discover", async () => {
      const ws = await deaf();
      for (let i = 1; i <= 28_200; i++) ws.send(JSON.stringify({ jsonrpc: "2.0", id: i, method: "rpc.discover", params: {} }));
      await sleep(3000);
      ws.terminate();
    }],
    ["client stops reading: 480 crediting streams", async (attacker) => {
      const ws = await deaf();
      for (let i = 0; i < 240; i++) {
        ws.send(JSON.stringify({ jsonrpc: "2.0", id: i + 1, method: "process.spawn", params: { sandbox: attacker.id, cmd: "bash", args: ["-c", "cat /dev/zero & cat /dev/zero >&2"], stdin: null, stdout: 2 * i + 1, stderr: 2 * i + 2 } }));
        for (const s of [2 * i + 1, 2 * i + 2]) {
          const credit = Buffer.alloc(9);
          credit[0] = 2;
          credit.writeUInt32BE(s, 1);
          credit.writeUInt32BE(64 << 20, 5);
          ws.send(credit);
        }
      }
      await sleep(4000);
      ws.terminate();
    }],
  ];

  const rows: Array<[string, NeighbourReport]> = [];
  const loadStart = loadavg()[0]!.toFixed(2);
  for (const [name, attack] of attacks) {
    const attacker = await makeAttacker().catch((err: Error) => {
      throw new Error(`${err.message}\n--- daemon log\n${daemon.logs().split("\n").slice(-15).join("\n")}`);
    });
    let outcome = "";
    // The attack's own outcome is not what is measured: a sandbox that kills itself is one.
    const report = await duringAttack(neighbour, pid, () => attack(attacker).catch((err: Error) => (outcome = ` (the attacker ended: ${err.message.slice(0, 160)})`)), 3000);
    await attacker.kill().catch(() => {});
    console.log(`${name}: ${report.line}${outcome}`);
    rows.push([`${name}${outcome}`, report]);
  }
  await neighbour.kill();
  await daemon[Symbol.asyncDispose]();
  await up.close();
  sink.kill();
  rmSync(dir, { recursive: true, force: true });

  const table = [
    `<!-- neighbours:start (bench/neighbours.ts, ${new Date().toISOString()}; load ${loadStart} → ${loadavg()[0]!.toFixed(2)}) -->`,
    "## A neighbour while one tenant attacks",
    "",
    "Another token's sandbox measures `spawn(\"true\")` round trips (median, worst) while each workload runs; idle is its median just before, in the same run. Target: ≤ 2× idle, daemon RSS growth ≤ 200 MB.",
    "",
    "| workload | neighbour idle | during (worst) | ratio | daemon RSS growth | met |",
    "|---|---|---|---|---|---|",
    ...rows.map(([name, r]) => {
      const ratio = r.duringMs / r.idleMs;
      const met = ratio <= 2 && r.rssGrowth <= 200e6;
      return `| ${name} | ${r.idleMs.toFixed(2)} ms | ${r.duringMs.toFixed(2)} ms (${r.worstMs.toFixed(0)} ms, n=${r.samples}) | ${ratio.toFixed(2)}× | ${(r.rssGrowth / 1e6).toFixed(1)} MB | ${met ? "yes" : "**no**"} |`;
    }),
    "<!-- neighbours:end -->",
  ].join("\n");
  const current = readFileSync(RESULTS, "utf8");
  const marked = /<!-- neighbours:start[\s\S]*?<!-- neighbours:end -->/;
  writeFileSync(RESULTS, marked.test(current) ? current.replace(marked, table) : `${current.trimEnd()}\n\n${table}\n`);
  console.log(table);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
