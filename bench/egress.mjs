// Egress proxy overhead, each beside its baseline from the same run: the same client
// (egress-client.mjs) talks to a local upstream directly, through a minimal Node CONNECT proxy,
// and from inside a sandbox through sbx's proxy (the upstream reached by name via --resolve):
// as an opaque CONNECT tunnel, and intercepted with a secret substituted into each request.
// Run: node bench/egress.mjs  (prints a Markdown table; run.mjs includes it in RESULTS.md)
import { execFile, execFileSync, spawn } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttp } from "node:http";
import { Agent as HttpsAgent, createServer as createHttps, request as httpsRequest } from "node:https";
import net from "node:net";
import tls from "node:tls";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = join(BENCH, "..");
const { Sandbox } = await import(pathToFileURL(join(ROOT, "packages/client/dist/index.js")).href);
const N = Number(process.env.EGRESS_N ?? 300);
/** The bulk download, and how many of them, for throughput. */
const BIG = 32 * 1024 * 1024;
const BIG_N = Number(process.env.EGRESS_BIG_N ?? 8);
const SECRET = "bench-secret-value-0123456789abcdef";

function selfSigned(dir) {
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=api.bench.test", "-addext", "subjectAltName=DNS:api.bench.test,DNS:secret.bench.test", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
  return { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
}

const listen = (server) => new Promise((r) => server.listen(0, "127.0.0.1", () => r(server.address().port)));

/** A minimal CONNECT proxy: the floor a proxy hop costs. */
function minimalProxy() {
  const server = net.createServer((client) => {
    client.once("data", (head) => {
      const m = /^CONNECT ([^:]+):(\d+)/.exec(head.toString());
      if (!m) return client.destroy();
      const up = net.connect(Number(m[2]), "127.0.0.1", () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        client.pipe(up).pipe(client);
      });
      up.on("error", () => client.destroy());
      client.on("error", () => up.destroy());
    });
  });
  return server;
}

/**
 * A minimal intercepting proxy: the floor of what interception costs in Node. It answers the
 * CONNECT, terminates TLS with the upstream's own certificate, and sends each request on over a
 * kept-alive verified-less TLS agent with the Authorization header swapped; no checks, no scrubbing.
 */
function minimalInterceptor(tlsFiles, upstreamPort) {
  const agent = new HttpsAgent({ keepAlive: true, rejectUnauthorized: false });
  const inner = createHttp((req, res) => {
    const up = httpsRequest({ host: "127.0.0.1", port: upstreamPort, servername: "secret.bench.test", method: req.method, path: req.url, headers: { ...req.headers, authorization: `Bearer ${SECRET}` }, agent }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  return net.createServer((client) => {
    client.once("data", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      inner.emit("connection", new tls.TLSSocket(client, { isServer: true, ...tlsFiles, ALPNProtocols: ["http/1.1"] }));
    });
  });
}

// Asynchronous: the upstreams and the minimal proxy live in this process and must keep serving.
const execFileAsync = promisify(execFile);
async function runClient(args, env = {}) {
  const { stdout } = await execFileAsync(process.execPath, [join(BENCH, "egress-client.mjs"), ...args.map(String)], { env: { ...process.env, ...env } });
  return JSON.parse(stdout);
}

export async function measureEgress() {
  const dir = mkdtempSync(join(tmpdir(), "sbx-bench-egress-"));
  const tlsFiles = selfSigned(dir);
  const body = "ok\n";
  const big = Buffer.alloc(BIG, "x");
  const handler = (req, res) => {
    const data = req.url === "/big" ? big : body;
    res.writeHead(200, { "Content-Length": data.length }).end(data);
  };
  const httpServer = createHttp({ keepAliveTimeout: 60_000 }, handler);
  const httpsServer = createHttps({ ...tlsFiles, keepAliveTimeout: 60_000 }, handler);
  const httpPort = await listen(httpServer);
  const httpsPort = await listen(httpsServer);
  const proxy = minimalProxy();
  const proxyPort = await listen(proxy);
  const interceptor = minimalInterceptor(tlsFiles, httpsPort);
  const interceptorPort = await listen(interceptor);

  const stateDir = mkdtempSync(join(tmpdir(), "sbx-bench-egress-state-"));
  const daemon = spawn(process.execPath, [join(ROOT, "packages/daemon/dist/cli.js"), "daemon", "--listen", "127.0.0.1:0", "--state-dir", stateDir, "--quiet", "--warm-pool", "0",
    "--resolve", `api.bench.test:80=127.0.0.1:${httpPort}`, "--resolve", `api.bench.test:443=127.0.0.1:${httpsPort}`,
    "--resolve", `secret.bench.test:443=127.0.0.1:${httpsPort}`, "--extra-ca", join(dir, "cert.pem")], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((resolve) => {
    let out = "";
    daemon.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (ws:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
  });
  const token = readFileSync(join(stateDir, "token"), "utf8").trim();
  // One sandbox without secrets (the plain rows), one holding a secret bound to secret.bench.test.
  const sb = await Sandbox.create({ url, token, allowNet: ["api.bench.test"] });
  const sbKey = await Sandbox.create({ url, token, allowNet: ["api.bench.test"], secrets: { KEY: { hosts: ["secret.bench.test"], value: SECRET } } });
  for (const s of [sb, sbKey]) await s.fs.writeFile("/tmp/egress-client.mjs", readFileSync(join(BENCH, "egress-client.mjs")));
  const inside = async (args, path = "/") => JSON.parse(await sb.sh`node /tmp/egress-client.mjs ${args.map(String)}`.env("NODE_OPTIONS", "").env("EGRESS_PATH", path).text());
  // $KEY (the placeholder) is expanded by the sandbox's shell; the proxy swaps in SECRET on secret.bench.test only.
  const insideWithKey = async (args, path = "/") =>
    JSON.parse(await sbKey.sh`EGRESS_HEADER="Authorization: Bearer $KEY" node /tmp/egress-client.mjs ${args.map(String)}`.env("NODE_OPTIONS", "").env("EGRESS_PATH", path).text());
  const outside = (args, path = "/") => runClient(args, { EGRESS_PATH: path, EGRESS_HEADER: `Authorization: Bearer ${SECRET}` });

  const rows = [];
  for (const [scheme, port] of [["http", 80], ["https", 443]]) {
    for (const keepAlive of [0, 1]) {
      const hostPort = scheme === "http" ? httpPort : httpsPort;
      const direct = await runClient([scheme, "127.0.0.1", hostPort, N, keepAlive]);
      const minimal = scheme === "https" ? await runClient([scheme, "api.bench.test", hostPort, N, keepAlive, "127.0.0.1", proxyPort]) : null;
      const sbx = await inside([scheme, "api.bench.test", port, N, keepAlive, "127.0.0.1", 3128]);
      rows.push({ what: `${scheme === "http" ? "plain HTTP" : "HTTPS (CONNECT tunnel)"}, ${keepAlive ? "keep-alive" : "new connection per request"}`, direct, minimal, sbx });
    }
  }
  // Interception with substitution vs the opaque tunnel vs direct, all in this run.
  const secretRows = [];
  for (const keepAlive of [1, 0]) {
    const direct = await outside(["https", "127.0.0.1", httpsPort, N, keepAlive]);
    const minimal = await outside(["https", "secret.bench.test", 443, N, keepAlive, "127.0.0.1", interceptorPort]);
    const tunnel = await insideWithKey(["https", "api.bench.test", 443, N, keepAlive, "127.0.0.1", 3128]);
    const intercepted = await insideWithKey(["https", "secret.bench.test", 443, N, keepAlive, "127.0.0.1", 3128]);
    secretRows.push({ what: `small GET, ${keepAlive ? "keep-alive" : "new connection per request"} (n=${N})`, direct, minimal, tunnel, intercepted, unit: "ms" });
  }
  {
    const direct = await outside(["https", "127.0.0.1", httpsPort, BIG_N, 1], "/big");
    const minimal = await outside(["https", "secret.bench.test", 443, BIG_N, 1, "127.0.0.1", interceptorPort], "/big");
    const tunnel = await insideWithKey(["https", "api.bench.test", 443, BIG_N, 1, "127.0.0.1", 3128], "/big");
    const intercepted = await insideWithKey(["https", "secret.bench.test", 443, BIG_N, 1, "127.0.0.1", 3128], "/big");
    secretRows.push({ what: `${BIG / 1048576} MiB download, keep-alive (n=${BIG_N})`, direct, minimal, tunnel, intercepted, unit: "MB/s" });
  }
  await sb.kill();
  await sbKey.kill();
  daemon.kill("SIGTERM");
  await new Promise((r) => daemon.once("exit", r));
  for (const server of [proxy, interceptor, httpServer, httpsServer]) {
    server.close();
    server.closeAllConnections?.();
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });

  const ms = (x) => `${x.median.toFixed(2)} ms (p90 ${x.p90.toFixed(2)}), ${Math.round(x.rps)} req/s`;
  const lines = [
    `| request (n=${N} sequential) | direct | minimal CONNECT proxy | through sbx's proxy | added latency vs direct | sbx vs minimal proxy |`,
    "|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.what} | ${ms(r.direct)} | ${r.minimal ? ms(r.minimal) : "—"} | ${ms(r.sbx)} | +${(r.sbx.median - r.direct.median).toFixed(2)} ms | ${r.minimal ? `${(r.sbx.median / r.minimal.median).toFixed(2)}×` : "—"} |`),
  ];
  const cell = (x, unit) => (unit === "ms" ? `${x.median.toFixed(2)} ms (p90 ${x.p90.toFixed(2)}), ${Math.round(x.rps)} req/s` : `${x.mbps.toFixed(0)} MB/s`);
  const added = (x, base, unit) => (unit === "ms" ? `+${(x.median - base.median).toFixed(2)} ms` : `${((x.mbps / base.mbps) * 100).toFixed(0)} %`);
  lines.push(
    "",
    "HTTPS with a secret (a second sandbox, holding one secret bound to `secret.bench.test`): it sends `Authorization: Bearer $KEY` (its placeholder); to `secret.bench.test` the proxy terminates TLS, swaps in the value, scrubs the response and re-encrypts; to `api.bench.test` it is an opaque tunnel (the proxy answers the CONNECT at once and checks the first bytes are TLS, as for every tunnel of a sandbox with secrets); direct is the same client on the host with the real value.",
    "",
    "The minimal intercepting proxy (host side, like the minimal CONNECT proxy above) is the floor of interception in Node: node:http over a terminated TLS socket, requests sent on over a kept-alive TLS agent with the header swapped, no checks and no scrubbing.",
    "",
    "| request | direct | minimal intercepting proxy | sbx tunnel | sbx intercepted + substituted | tunnel vs direct | intercepted vs direct | sbx vs minimal interceptor |",
    "|---|---|---|---|---|---|---|---|",
    ...secretRows.map((r) => `| ${r.what} | ${cell(r.direct, r.unit)} | ${cell(r.minimal, r.unit)} | ${cell(r.tunnel, r.unit)} | ${cell(r.intercepted, r.unit)} | ${added(r.tunnel, r.direct, r.unit)} | ${added(r.intercepted, r.direct, r.unit)} | ${r.unit === "ms" ? `${(r.intercepted.median / r.minimal.median).toFixed(2)}×` : `${((r.intercepted.mbps / r.minimal.mbps) * 100).toFixed(0)} %`} |`),
  );
  return lines.join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(await measureEgress());
  process.exit(0);
}
