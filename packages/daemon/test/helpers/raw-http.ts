/**
 * Raw HTTP from inside a sandbox to its proxy bridge (127.0.0.1:3128), for requests the SDKs'
 * clients would never send: a small Python program writes each one byte for byte, on its own
 * connection, and hands back everything it read. The egress tests (proxy, secrets) share it.
 */
import type { Sandbox } from "@sbx/client";
import { ok, runBash } from "./bash.js";

/** A part of a request that waits for the head of the proxy's reply (a tunnel's 200) before the parts after it go. */
export const REPLY_HEAD = Symbol("reply head");

export interface RawRequest {
  /** Speak TLS through a CONNECT tunnel to this host's port 443 (verified with SSL_CERT_FILE); a plain proxy request when absent. */
  tls?: string;
  /** Sent in order: text (latin-1) and bytes as they are, a number sleeps that many seconds (a body in pieces), REPLY_HEAD waits. */
  parts: Array<string | Buffer | number | typeof REPLY_HEAD>;
  /** Seconds of silence after which the reply counts as complete (10 unless given); refusals close at once. */
  wait?: number;
}

/** The program, reading the requests (as `encode` writes them) from the JSON file it is given. */
export const RAW_HTTP_PY = String.raw`
import base64, json, socket, ssl, sys, time
out = []
for r in json.load(open(sys.argv[1])):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.settimeout(r["wait"])
    data = b""
    host = r.get("tls")
    if host:
        s.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (host, host)).encode())
        # byte by byte, so that none of the server's TLS is taken for the head
        while b"\r\n\r\n" not in data:
            c = s.recv(1)
            if not c:
                break
            data += c
        if not data.startswith(b"HTTP/1.1 200"):
            out.append(base64.b64encode(data).decode())
            continue
        data = b""
        s = ssl.create_default_context().wrap_socket(s, server_hostname=host)
    try:
        for part in r["parts"]:
            if "sleep" in part:
                time.sleep(part["sleep"])
            elif "head" in part:
                while b"\r\n\r\n" not in data:
                    c = s.recv(65536)
                    if not c:
                        break
                    data += c
            else:
                s.sendall(base64.b64decode(part["send"]))
    except OSError:
        pass
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
    except OSError:
        pass
    s.close()
    out.append(base64.b64encode(data).decode())
print(json.dumps(out))
`;

function encode(requests: RawRequest[]): string {
  return JSON.stringify(
    requests.map(({ tls, parts, wait = 10 }) => ({
      ...(tls ? { tls } : {}),
      wait,
      parts: parts.map((p) => (p === REPLY_HEAD ? { head: true } : typeof p === "number" ? { sleep: p } : { send: Buffer.from(p as string, "latin1").toString("base64") })),
    })),
  );
}

/** Sends each request on its own connection from inside `sb`; the replies, in order. */
export async function rawRequests(sb: Sandbox, requests: RawRequest[]): Promise<RawResponse[]> {
  const file = `/tmp/raw-${Math.random().toString(36).slice(2)}.json`;
  await sb.fs.writeTextFile("/tmp/raw-http.py", RAW_HTTP_PY);
  await sb.fs.writeTextFile(file, encode(requests));
  const out = ok(await runBash(sb, `python3 /tmp/raw-http.py ${file}`), "raw-http.py");
  return (JSON.parse(out) as string[]).map((b) => parseResponse(Buffer.from(b, "base64").toString("latin1")));
}

/** One HTTP/1.x response, parsed from raw bytes (latin-1). */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  raw: string;
}

/** Parses the first response in `raw` (headers lower-cased; the body is everything after the head). */
export function parseResponse(raw: string): RawResponse {
  const end = raw.indexOf("\r\n\r\n");
  const head = end < 0 ? raw : raw.slice(0, end);
  const [statusLine, ...lines] = head.split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "")?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(":");
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status, headers, body: end < 0 ? "" : raw.slice(end + 4), raw };
}

/** The payload of a chunked body. */
export function dechunk(body: string): string {
  let out = "";
  for (let i = 0; ; ) {
    const eol = body.indexOf("\r\n", i);
    const size = parseInt(body.slice(i, eol), 16);
    if (!(size > 0)) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    i = eol + 2 + size + 2;
  }
}

/** A response's body, dechunked if it came chunked. */
export const bodyOf = (r: RawResponse): string => (r.headers["transfer-encoding"] === "chunked" ? dechunk(r.body) : r.body);

/** One chunk of a chunked body. */
export const chunk = (s: string | Buffer): Buffer => Buffer.concat([Buffer.from(`${Buffer.byteLength(s).toString(16)}\r\n`), Buffer.from(s), Buffer.from("\r\n")]);

/** A CONNECT to `authority` (host:port), nothing after it. */
export const connect = (authority: string, wait?: number): RawRequest => ({ parts: [`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`], ...(wait ? { wait } : {}) });

/** A plain proxy GET (absolute-URI) of `path` on `authority`. */
export const get = (authority: string, path = "/echo", wait?: number): RawRequest => ({
  parts: [`GET http://${authority}${path} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`],
  ...(wait ? { wait } : {}),
});

/** One request with `Connection: close` (and Content-Length for a body) on an intercepted TLS connection to `host`. */
export function tlsRequest(host: string, method: string, path: string, headers: string[] = [], body?: string | Buffer): RawRequest {
  const length = body === undefined ? [] : [`Content-Length: ${Buffer.byteLength(body)}`];
  const head = `${method} ${path} HTTP/1.1\r\n${[`Host: ${host}`, ...headers, ...length, "Connection: close"].map((h) => `${h}\r\n`).join("")}\r\n`;
  return { tls: host, parts: body === undefined ? [head] : [head, body] };
}
