// One client for every egress measurement (direct, through a minimal CONNECT proxy, through a
// sandbox's proxy), so only the path differs: N sequential GETs, one connection per request or
// one kept alive. Prints JSON {median, p90 (ms), rps, mbps (body MB/s)}.
//   [EGRESS_PATH=/] [EGRESS_HEADER="Name: value"] node egress-client.mjs <http|https> <host> <port> <n> <keepalive 0|1> [proxyHost proxyPort]
import net from "node:net";
import tls from "node:tls";

const [scheme, host, port, n, keepAlive, proxyHost, proxyPort] = process.argv.slice(2);
const N = Number(n);

/** Reads one response: its head, then a Content-Length or chunked body (counted, not kept). */
function readResponse(sock, withBody = true) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let head = null;
    let remaining = 0;
    let chunked = false;
    let bodyBytes = 0;
    const finish = () => {
      sock.off("data", onData);
      if (buf.length) sock.unshift(buf);
      resolve({ head, bodyBytes });
    };
    const onData = (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (head === null) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        head = buf.subarray(0, end).toString("latin1");
        buf = buf.subarray(end + 4);
        if (!withBody) return finish();
        chunked = /transfer-encoding:\s*chunked/i.test(head);
        remaining = chunked ? -1 : Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      }
      for (;;) {
        if (!chunked) {
          const take = Math.min(remaining, buf.length);
          bodyBytes += take;
          remaining -= take;
          buf = buf.subarray(take);
          return remaining === 0 ? finish() : undefined;
        }
        if (remaining > 0) {
          const take = Math.min(remaining, buf.length);
          bodyBytes += take;
          remaining -= take;
          buf = buf.subarray(take);
          if (remaining > 0) return;
          remaining = -2; // the CRLF after the chunk
        }
        if (remaining === -2 || remaining === -3) {
          if (buf.length < 2) return;
          buf = buf.subarray(2);
          if (remaining === -3) return finish();
          remaining = -1;
        }
        const line = buf.indexOf("\r\n");
        if (line < 0) return;
        const size = parseInt(buf.subarray(0, line).toString("latin1"), 16);
        buf = buf.subarray(line + 2);
        // The last chunk: its CRLF (no trailers here) is handled like a chunk's, then done.
        remaining = size === 0 ? -3 : size;
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
    const { head: status } = await readResponse(raw, false);
    if (!/^HTTP\/1\.1 200/.test(status)) throw new Error(`CONNECT refused: ${status.split("\r\n")[0]}`);
  }
  const s = tls.connect({ socket: raw, servername: host, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
  await new Promise((r, j) => (s.once("secureConnect", r), s.once("error", j)));
  return s;
}

const PATH = process.env.EGRESS_PATH ?? "/";
const EXTRA = process.env.EGRESS_HEADER ? `${process.env.EGRESS_HEADER}\r\n` : "";
let bytes = 0;

async function get(sock) {
  const path = scheme === "http" && proxyHost ? `http://${host}:${port}${PATH}` : PATH;
  sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n${EXTRA}Connection: ${keepAlive === "1" ? "keep-alive" : "close"}\r\n\r\n`);
  const { head, bodyBytes } = await readResponse(sock);
  if (!/^HTTP\/1\.1 200/.test(head)) throw new Error(`GET failed: ${head.split("\r\n")[0]}`);
  bytes += bodyBytes;
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
console.log(JSON.stringify({ median: times[Math.floor(N / 2)], p90: times[Math.floor(N * 0.9)], rps: (N / total) * 1000, mbps: bytes / 1e6 / (total / 1000) }));
