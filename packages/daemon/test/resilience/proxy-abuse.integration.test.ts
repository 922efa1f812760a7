import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { startDaemon } from "../helpers/daemon.js";
import { useDaemon } from "../helpers/fixtures.js";
import { ok, runBash } from "../helpers/bash.js";
import { duringAttack, expectUnharmed, openFds } from "../helpers/neighbour.js";
import { startUpstreams, type Upstreams } from "../helpers/upstreams.js";

/**
 * Resilience items 1 and 2: what a hostile sandbox can make the daemon's egress proxy do on
 * its behalf is bounded and charged to it, and a neighbour's calls stay fast throughout.
 * The attacker holds a secret, so the proxy reads its request bodies (the expensive path).
 */

let up: Upstreams;
let attacker: Sandbox;
let neighbour: Sandbox;
let dir: string;
let sink: ChildProcess;
let sinkPort = "";
const daemonSink = () => `127.0.0.1:${sinkPort}`;

/**
 * An upstream that reads and drops request bodies, in a process of its own: the test process
 * measures the neighbour's round trips, so it must not be the one busy with the attack's bytes.
 */
const SINK = `const s = require("http").createServer((q, r) => { q.resume(); q.on("end", () => r.end("ok")); });
s.listen(0, "127.0.0.1", () => console.log(s.address().port));`;

beforeAll(async () => {
  up = await startUpstreams();
  dir = mkdtempSync(join(tmpdir(), "sbx-proxy-abuse-"));
  writeFileSync(join(dir, "ca.pem"), up.caPem);
  sink = spawn(process.execPath, ["-e", SINK], { stdio: ["ignore", "pipe", "inherit"] });
  sinkPort = await new Promise<string>((r) => sink.stdout!.once("data", (d) => r(String(d).trim())));
});
// registered before the daemon's hooks, so it runs after the daemon stopped
afterAll(async () => {
  await up?.close();
  sink?.kill();
  rmSync(dir, { recursive: true, force: true });
});
const daemon = useDaemon(() => {
  // Port-less on purpose: item 13's footgun (a pin and a secret host both without a port).
  const resolve = { ...up.resolve, "sink.example.test": daemonSink(), "portless.example.test": "127.0.0.1" };
  return { config: { egress: { resolve, extraCaCerts: [join(dir, "ca.pem")] } }, args: ["--warm-pool", "0"] };
});
beforeAll(async () => {
  attacker = await Sandbox.create({ ...daemon.opts, timeout: "10m", allowNet: ["api.example.test", "sink.example.test"], secrets: { KEY: { hosts: ["api.openai.com"], value: "sk-resilience-0123456789" } } });
  neighbour = await Sandbox.create({ ...daemon.opts, timeout: "10m", allowNet: ["api.example.test"] });
});
afterAll(async () => {
  await attacker?.kill().catch(() => {});
  await neighbour?.kill().catch(() => {});
});

/** Posts `file` with `coding` to `url` from `parallel` curls at once, `rounds` times each; prints every status code. */
const posts = (file: string, coding: string, parallel: number, rounds = 1, url = "https://api.openai.com/echo/abuse") => `
for i in $(seq ${parallel}); do
  (for r in $(seq ${rounds}); do curl -sS -o /dev/null -w '%{http_code}\\n' -H "Content-Encoding: ${coding}" --data-binary @${file} ${url}; done) &
done
wait`;

const codes = (out: string) => out.trim().split("\n").reduce<Record<string, number>>((acc, c) => ((acc[c] = (acc[c] ?? 0) + 1), acc), {});

describe("compressed request bodies (resilience item 1)", () => {
  it("hundreds of stacked codings are refused at once (415), while a neighbour's calls stay fast", async () => {
    let stacked = gzipSync(Buffer.alloc(4 << 20));
    for (let i = 0; i < 600; i++) stacked = gzipSync(stacked, { level: 0 });
    await attacker.fs.writeFile("/tmp/stacked.bin", stacked);
    const coding = Array(601).fill("gzip").join(", ");
    let out = "";
    const report = await duringAttack(neighbour, daemon.proc.pid!, async () => {
      out = ok(await runBash(attacker, posts("/tmp/stacked.bin", coding, 8, 5)), "curl");
    });
    console.log(`stacked codings: ${report.line}`);
    expect(codes(out)).toEqual({ 415: 40 });
    expectUnharmed(report, expect);
  });

  it("decompression bombs from many connections decode one at a time per sandbox, off the daemon's thread (413 each)", async () => {
    await attacker.fs.writeFile("/tmp/bomb.bin", gzipSync(Buffer.alloc(80 << 20)));
    let out = "";
    const report = await duringAttack(neighbour, daemon.proc.pid!, async () => {
      out = ok(await runBash(attacker, posts("/tmp/bomb.bin", "gzip", 12)), "curl");
    });
    console.log(`bombs: ${report.line}`);
    expect(codes(out)).toEqual({ 413: 12 });
    expectUnharmed(report, expect);
  });

  it("24 compressed 15 MiB bodies at once: held one decode at a time per sandbox, so the daemon does not grow", async () => {
    // Incompressible bytes, gzip'd: each is held whole while it is checked. (The daemon grew 61 → 789 MiB before.)
    await attacker.fs.writeFile("/tmp/big.bin", gzipSync(randomBytes(15 << 20), { level: 1 }));
    let out = "";
    const report = await duringAttack(neighbour, daemon.proc.pid!, async () => {
      // Plain HTTP: the proxy reads bodies there too in a sandbox holding secrets, and the sink stays cheap.
      out = ok(await runBash(attacker, posts("/tmp/big.bin", "gzip", 24, 1, "http://sink.example.test/")), "curl");
    });
    console.log(`held bodies: ${report.line}`);
    const seen = codes(out);
    expect(Object.keys(seen).filter((c) => c !== "200" && c !== "503")).toEqual([]);
    expect((seen["200"] ?? 0) + (seen["503"] ?? 0)).toBe(24);
    expectUnharmed(report, expect);
  });

  it("a body past the sandbox's held-bytes budget (egress.maxHeldBytesPerSandbox) is refused 503 naming it, after it was read", async () => {
    await using small = await startDaemon({ config: { egress: { resolve: { "sink.example.test": daemonSink() }, maxHeldBytesPerSandbox: "1MiB" } }, args: ["--warm-pool", "0"] });
    const sb = await Sandbox.create({ ...small.opts, allowNet: ["sink.example.test"], secrets: { KEY: { hosts: ["api.openai.com"], value: "sk-resilience-0123456789" } } });
    await sb.fs.writeFile("/tmp/big.bin", gzipSync(randomBytes(3 << 20), { level: 1 }));
    const r = ok(await runBash(sb, "curl -sS -o /dev/null -D - -H 'Content-Encoding: gzip' --data-binary @/tmp/big.bin http://sink.example.test/"), "curl");
    expect(r).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(r).toContain("X-Sbx-Error: the proxy already holds as many request bodies of this sandbox as it may (1 MiB, or the daemon's limit); try again");
    await sb.kill();
  });
});

describe("connections (resilience item 2)", () => {
  it("a sandbox holding 1000 idle proxy connections gets 256; the rest are told why (or closed by its own bridge); the daemon's descriptors stay bounded; neighbours connect", async () => {
    const fdsBefore = openFds(daemon.proc.pid!);
    const flood = `
import socket, time
socks, admitted, refused, closed = [], 0, 0, 0
for i in range(1000):
    socks.append(socket.create_connection(("127.0.0.1", 3128)))
time.sleep(1.5)
for s in socks:
    s.setblocking(False)
    try:
        data = s.recv(4096)
        if data.startswith(b"HTTP/1.1 503"):
            refused += 1
        else:
            closed += 1  # the supervisor's bridge takes at most 512 at once
    except BlockingIOError:
        admitted += 1  # still open, waiting: the proxy took it
print(admitted, refused, closed)
time.sleep(2)
`;
    await attacker.fs.writeTextFile("/tmp/flood.py", flood);
    let out = "";
    let fdsPeak = fdsBefore;
    let neighbourEgress = "";
    const report = await duringAttack(neighbour, daemon.proc.pid!, async () => {
      const attack = runBash(attacker, "python3 /tmp/flood.py");
      await new Promise((r) => setTimeout(r, 2000));
      fdsPeak = openFds(daemon.proc.pid!);
      // The neighbour's own proxy and a new API client both still work.
      neighbourEgress = ok(await runBash(neighbour, "curl -sS -o /dev/null -w '%{http_code}' http://api.example.test/echo/neighbour"), "curl");
      const fresh = await Sandbox.list(daemon.opts);
      expect(fresh.length).toBeGreaterThanOrEqual(2);
      out = ok(await attack, "flood.py");
    });
    console.log(`connection flood: ${report.line}; daemon fds ${fdsBefore} → ${fdsPeak}`);
    const [admitted, refused, closed] = out.trim().split(" ").map(Number);
    expect(admitted).toBe(256);
    expect(refused).toBeGreaterThan(0);
    expect(admitted! + refused! + closed!).toBe(1000);
    expect(neighbourEgress).toBe("200");
    // Each admitted connection costs the daemon one descriptor (no upstream was dialled).
    expect(fdsPeak - fdsBefore).toBeLessThan(256 + 64);
    expectUnharmed(report, expect);
    expect(daemon.logs()).toMatch(/sandbox sbx_\w+: egress: this sandbox has 256 open proxy connections, the most it may \(egress\.maxConnectionsPerSandbox\)/);
  });
});

describe("one token's share of the daemon's proxy connections", () => {
  it("a token's sandboxes together hold at most egress.maxConnectionsPerToken tunnels; another token's sandbox still gets its own", async () => {
    const OTHER = `tok-${randomBytes(16).toString("hex")}`;
    await using d = await startDaemon({ config: { tokens: [OTHER], egress: { resolve: up.resolve, maxConnectionsPerSandbox: 4, maxConnectionsPerToken: 6 } }, args: ["--warm-pool", "0"] });
    // Opens N tunnels, prints each answer's status code, then holds them for HOLD seconds.
    const HOLDER = `
import socket, sys, time
socks, codes = [], []
for i in range(int(sys.argv[1])):
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(b"CONNECT api.example.test:443 HTTP/1.1\\r\\nHost: api.example.test:443\\r\\n\\r\\n")
    codes.append(s.recv(4096).split(b" ")[1].decode())
    socks.append(s)
print(" ".join(codes), flush=True)
time.sleep(float(sys.argv[2]))
`;
    const sandbox = async (token: string) => {
      const sb = await Sandbox.create({ url: d.url, token, allowNet: ["api.example.test"] });
      await sb.fs.writeTextFile("/tmp/hold.py", HOLDER);
      return sb;
    };
    const [a1, a2, b] = [await sandbox(d.token), await sandbox(d.token), await sandbox(OTHER)];
    try {
      const holding = await a1.spawn("python3", { args: ["/tmp/hold.py", "4", "30"] });
      const first = (await holding.stdout!.getReader().read()).value!;
      expect(new TextDecoder().decode(first).trim()).toBe("200 200 200 200");
      expect(ok(await runBash(a2, "python3 /tmp/hold.py 4 0"), "a2").trim()).toBe("200 200 503 503");
      expect(ok(await runBash(b, "python3 /tmp/hold.py 4 0"), "b").trim()).toBe("200 200 200 200");
      expect(d.logs()).toMatch(/egress: this sandbox's token has 6 open proxy connections over its sandboxes, the most it may \(egress\.maxConnectionsPerToken\)/);
      await holding.kill("SIGKILL");
    } finally {
      for (const sb of [a1, a2, b]) await sb.kill().catch(() => {});
    }
  });
});

describe("a port-less pin to a loopback address (resilience item 13)", () => {
  it("plus a port-less secret host opens no port of that address; naming the port in allowNet does", async () => {
    const sb = await Sandbox.create({ ...daemon.opts, secrets: { K: { hosts: ["portless.example.test"], value: "sk-portless-0123456789" } } });
    try {
      const url = `http://portless.example.test:${sinkPort}/`;
      const refused = ok(await runBash(sb, `curl -sS -o /dev/null -D - ${url} | grep -i -e '^HTTP' -e '^x-sbx-error'`), "curl");
      expect(refused).toContain("HTTP/1.1 403 Forbidden");
      expect(refused).toContain(`portless.example.test is pinned by egress.resolve to 127.0.0.1 (a loopback address) without a port, and its allowNet entry names none: name the port in allowNet (portless.example.test:${sinkPort}) or in the pin`);
      await sb.setAllowNet([`portless.example.test:${sinkPort}`]);
      expect(ok(await runBash(sb, `curl -sS ${url}`), "curl")).toBe("ok");
    } finally {
      await sb.kill();
    }
  });
});
