// One client for every egress measurement (direct, through a minimal CONNECT proxy, through a
// sandbox's proxy), so only the path differs: N sequential GETs, one connection per request or
// one kept alive. Prints JSON {median, p90, rps} in milliseconds.
//   node egress-client.mjs <http|https> <host> <port> <n> <keepalive 0|1> [proxyHost proxyPort]
import net from "node:net";
import tls from "node:tls";

const [scheme, host, port, n, keepAlive, proxyHost, proxyPort] = process.argv.slice(2);
const N = Number(n);

function readResponse(sock) {
  return new Promise((resolve, reject) => {
    let buf = "";
    const onData = (d) => {
      buf += d.toString("latin1");
      const head = buf.indexOf("\r\n\r\n");
      if (head < 0) return;
      const len = Number(/content-length:\s*(\d+)/i.exec(buf.slice(0, head))?.[1] ?? 0);
      if (buf.length >= head + 4 + len) {
        sock.off("data", onData);
        resolve(buf.slice(0, head));
      }
    };
    sock.on("data", onData);
    sock.once("error", reject);
  });
}

async function open() {
  const via = proxyHost ? { host: proxyHost, port: Number(proxyPort) } : { host, port: Number(port) };
  const raw = net.connect(via);
  await new Promise((r, j) => (raw.once("connect", r), raw.once("error", j)));
  raw.setNoDelay(true);
  if (scheme === "http") return raw;
  if (proxyHost) {
    raw.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);
    const status = await readResponse(raw);
    if (!/^HTTP\/1\.1 200/.test(status)) throw new Error(`CONNECT refused: ${status.split("\r\n")[0]}`);
  }
  const s = tls.connect({ socket: raw, servername: host, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
  await new Promise((r, j) => (s.once("secureConnect", r), s.once("error", j)));
  return s;
}

async function get(sock) {
  const path = scheme === "http" && proxyHost ? `http://${host}:${port}/` : "/";
  sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: ${keepAlive === "1" ? "keep-alive" : "close"}\r\n\r\n`);
  const head = await readResponse(sock);
  if (!/^HTTP\/1\.1 200/.test(head)) throw new Error(`GET failed: ${head.split("\r\n")[0]}`);
}

const times = [];
const t0 = performance.now();
let sock = keepAlive === "1" ? await open() : null;
for (let i = 0; i < N; i++) {
  const t = performance.now();
  const s = sock ?? (await open());
  await get(s);
  if (!sock) s.destroy();
  times.push(performance.now() - t);
}
sock?.destroy();
const total = performance.now() - t0;
times.sort((a, b) => a - b);
console.log(JSON.stringify({ median: times[Math.floor(N / 2)], p90: times[Math.floor(N * 0.9)], rps: (N / total) * 1000 }));
