/**
 * Local upstream servers for the egress tests: one plain HTTP and one HTTPS server on
 * loopback, serving every test name (told apart by the Host header), with a throwaway CA
 * made by openssl. The daemon reaches them by real-looking names through `egress.resolve`
 * (`upstreams.resolve`), so the proxy's production code path is the one under test.
 *
 * Per name:
 * - any name: `/echo...` answers method, path, headers, body and TLS facts as JSON (`/echo-gzip...`
 *   the same JSON gzip'd, with Content-Encoding: gzip; `/echo-range...` the JSON without the body,
 *   honouring `Range: bytes=A-B` with a 206); `/bytes/N` answers N bytes of "x"; a path
 *   the test put in `canned` answers what it was given; anything else is a small text naming the host.
 * - pypi.example.test: a PEP 503 simple index with one wheel, whose file lives on
 *   files.pythonhosted.test.
 * - registry.example.test: an npm registry with one package (packument and tarball).
 * - git.example.test: `git http-backend` over CGI (smart HTTP) for /repo.git.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { gzipSync } from "node:zlib";

export const NAMES = [
  "api.example.test",
  "other.example.test",
  "pypi.example.test",
  "files.pythonhosted.test",
  "registry.example.test",
  "git.example.test",
  // real-looking API names, for the secrets tests
  "api.openai.com",
  "api.anthropic.com",
] as const;

/** A response a test sets up front for one path (on every name, both schemes). */
export interface CannedResponse {
  status?: number;
  headers?: Record<string, string>;
  body: string | Buffer;
  /** Sent gzip'd, with Content-Encoding: gzip. */
  gzip?: boolean;
}

/** One request as an upstream saw it. */
export interface SeenRequest {
  host: string;
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The headers as they came on the wire (name, value, ...), duplicates and all. */
  rawHeaders: string[];
  body: string;
  /** Whether the whole body arrived. */
  complete: boolean;
  /** The connection went away before the whole body arrived. */
  aborted: boolean;
  tls: boolean;
  servername: string | null;
}

export interface Upstreams {
  httpPort: number;
  httpsPort: number;
  /** The test CA's PEM (write it into the sandbox for curl --cacert and friends). */
  caPem: string;
  /** `egress.resolve` for the daemon's config: each name on 80 and 443 to the two servers. */
  resolve: Record<string, string>;
  /** Every request the upstreams received, oldest first. */
  seen: SeenRequest[];
  /** Responses by exact path (query included), served instead of anything else; empty unless a test fills it. */
  canned: Map<string, CannedResponse>;
  /**
   * An OpenAI-compatible stand-in on api.openai.com: POST /v1/chat/completions answers a chat
   * completion when the bearer token is `chatKey`, 401 otherwise (null: no key set yet).
   */
  chatKey: string | null;
  /** Connections the upstreams currently hold open. */
  openSockets(): number;
  wheel: { name: string; sha256: string; bytes: Buffer };
  npm: { name: string; version: string; tarball: Buffer; shasum: string; integrity: string };
  git: { head: string; file: string; content: string };
  close(): Promise<void>;
}

/** Makes a CA and a leaf certificate for `names` (and 127.0.0.1) in `dir`. */
function makeCertificates(dir: string, names: readonly string[]): { caPem: string; key: string; cert: string } {
  const ossl = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  ossl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sbx egress test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  ossl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", `/CN=${names[0]}`]);
  const san = [...names.map((n) => `DNS:${n}`), "IP:127.0.0.1"].join(",");
  writeFileSync(join(dir, "leaf.ext"), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n`);
  ossl(["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext"]);
  return { caPem: readFileSync(join(dir, "ca.pem"), "utf8"), key: readFileSync(join(dir, "leaf.key"), "utf8"), cert: readFileSync(join(dir, "leaf.pem"), "utf8") };
}

/** A minimal wheel (zip) for package `name` 1.0, made with the host's python3. */
function makeWheel(dir: string, name: string): Buffer {
  const file = join(dir, `${name}-1.0-py3-none-any.whl`);
  const script = `
import base64, hashlib, sys, zipfile
name, out = sys.argv[1], sys.argv[2]
files = {
  f"{name}/__init__.py": b"VALUE = 42\\n",
  f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: 1.0\\n".encode(),
  f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: sbx-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = []
for path, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
record.append(f"{name}-1.0.dist-info/RECORD,,")
files[f"{name}-1.0.dist-info/RECORD"] = ("\\n".join(record) + "\\n").encode()
with zipfile.ZipFile(out, "w") as z:
    for path, data in files.items():
        z.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)
`;
  execFileSync("python3", ["-c", script, name, file]);
  return readFileSync(file);
}

/** An npm tarball for `name`@`version`. */
function makeNpmTarball(dir: string, name: string, version: string): Buffer {
  const root = join(dir, "npm");
  mkdirSync(join(root, "package"), { recursive: true });
  writeFileSync(join(root, "package", "package.json"), JSON.stringify({ name, version, description: "sbx egress test package", main: "index.js" }, null, 2));
  writeFileSync(join(root, "package", "index.js"), "module.exports = 42;\n");
  execFileSync("tar", ["czf", "pkg.tgz", "--owner=0", "--group=0", "--mtime=2020-01-01", "package"], { cwd: root });
  return readFileSync(join(root, "pkg.tgz"));
}

/** A bare repository with one commit holding one file; returns the commit id. */
function makeGitRepo(dir: string, file: string, content: string): string {
  const work = join(dir, "work");
  mkdirSync(work);
  const git = (args: string[], cwd = work) =>
    execFileSync("git", ["-c", "user.name=sbx", "-c", "user.email=sbx@example.test", "-c", "init.defaultBranch=main", ...args], { cwd, encoding: "utf8", env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", HOME: dir } }).trim();
  git(["init", "-q"]);
  writeFileSync(join(work, file), content);
  git(["add", file]);
  git(["commit", "-q", "-m", "the only commit"]);
  const head = git(["rev-parse", "HEAD"]);
  git(["clone", "-q", "--bare", work, join(dir, "git", "repo.git")], dir);
  git(["update-server-info"], join(dir, "git", "repo.git"));
  return head;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Runs `git http-backend` for one request (CGI/1.1). */
function gitBackend(projectRoot: string, req: IncomingMessage, body: Buffer, res: ServerResponse, tls: boolean): void {
  const url = new URL(req.url ?? "/", "http://git.example.test");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: projectRoot,
    GIT_HTTP_EXPORT_ALL: "1",
    REQUEST_METHOD: req.method,
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.replace(/^\?/, ""),
    CONTENT_TYPE: req.headers["content-type"] ?? "",
    CONTENT_LENGTH: String(body.length),
    REMOTE_ADDR: "127.0.0.1",
    SERVER_PROTOCOL: "HTTP/1.1",
    GATEWAY_INTERFACE: "CGI/1.1",
    HTTPS: tls ? "on" : "",
    ...(req.headers["git-protocol"] ? { GIT_PROTOCOL: String(req.headers["git-protocol"]) } : {}),
    ...(req.headers["content-encoding"] ? { HTTP_CONTENT_ENCODING: String(req.headers["content-encoding"]) } : {}),
  };
  const cgi = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "inherit"] });
  const out: Buffer[] = [];
  cgi.stdout.on("data", (c: Buffer) => out.push(c));
  cgi.on("close", () => {
    const all = Buffer.concat(out);
    const split = all.indexOf("\r\n\r\n");
    const head = all.subarray(0, split).toString("latin1");
    const rest = all.subarray(split + 4);
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of head.split("\r\n")) {
      const i = line.indexOf(":");
      const k = line.slice(0, i).trim();
      const v = line.slice(i + 1).trim();
      if (k.toLowerCase() === "status") status = Number(v.split(" ")[0]);
      else headers[k] = v;
    }
    headers["Content-Length"] = String(rest.length);
    res.writeHead(status, headers);
    res.end(rest);
  });
  cgi.stdin.end(body);
}

/** Starts the two upstream servers. Close them with `close()`. */
export async function startUpstreams(): Promise<Upstreams> {
  const dir = mkdtempSync(join(tmpdir(), "sbx-upstreams-"));
  const { caPem, key, cert } = makeCertificates(dir, NAMES);
  const wheelName = "sbxdemo";
  const wheelBytes = makeWheel(dir, wheelName);
  const wheel = { name: `${wheelName}-1.0-py3-none-any.whl`, sha256: createHash("sha256").update(wheelBytes).digest("hex"), bytes: wheelBytes };
  const npmName = "sbx-demo";
  const npmVersion = "1.2.3";
  const tarball = makeNpmTarball(dir, npmName, npmVersion);
  const npm = {
    name: npmName,
    version: npmVersion,
    tarball,
    shasum: createHash("sha1").update(tarball).digest("hex"),
    integrity: `sha512-${createHash("sha512").update(tarball).digest("base64")}`,
  };
  const gitFile = "README.md";
  const gitContent = "cloned through the sbx egress proxy\n";
  const gitHead = makeGitRepo(dir, gitFile, gitContent);
  const seen: SeenRequest[] = [];
  const canned = new Map<string, CannedResponse>();
  const sockets = new Set<Socket>();

  // Filled in once the servers listen; the handler reads chatKey from it.
  const api: Upstreams = {
    httpPort: 0,
    httpsPort: 0,
    caPem,
    resolve: {},
    seen,
    canned,
    chatKey: null,
    openSockets: () => [...sockets].filter((s) => !s.destroyed).length,
    wheel,
    npm,
    git: { head: gitHead, file: gitFile, content: gitContent },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([http, https].map((s) => new Promise((r) => s.close(r))));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  const handler = (tls: boolean) => async (req: IncomingMessage, res: ServerResponse) => {
    const host = (req.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
    const path = req.url ?? "/";
    const servername = tls ? ((req.socket as TLSSocket).servername || null) : null;
    // recorded as soon as the head arrives, so a request that never completes is seen too
    const entry: SeenRequest = { host, method: req.method ?? "", path, headers: req.headers, rawHeaders: req.rawHeaders, body: "", complete: false, aborted: false, tls, servername };
    seen.push(entry);
    req.once("close", () => {
      if (!entry.complete) entry.aborted = true;
    });
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      return; // the sender went away mid-request (entry.aborted says so)
    }
    entry.body = body.toString("latin1");
    entry.complete = true;
    const scheme = tls ? "https" : "http";
    const send = (status: number, type: string, data: string | Buffer) => {
      res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(data) });
      res.end(data);
    };
    const fixed = canned.get(path);
    if (fixed) {
      const data = fixed.gzip ? gzipSync(fixed.body) : fixed.body;
      res.writeHead(fixed.status ?? 200, { "Content-Type": "text/plain", ...fixed.headers, ...(fixed.gzip ? { "Content-Encoding": "gzip" } : {}), "Content-Length": Buffer.byteLength(data) });
      return void res.end(data);
    }
    if (host === "api.openai.com" && path === "/v1/chat/completions" && req.method === "POST") {
      const authorized = api.chatKey !== null && req.headers.authorization === `Bearer ${api.chatKey}`;
      if (!authorized) return send(401, "application/json", JSON.stringify({ error: { message: "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key" } }));
      const { model } = JSON.parse(body.toString("utf8") || "{}") as { model?: string };
      const reply = { id: "chatcmpl-standin", object: "chat.completion", model, choices: [{ index: 0, message: { role: "assistant", content: "Hello from the local stand-in!" }, finish_reason: "stop" }] };
      return send(200, "application/json", JSON.stringify(reply));
    }
    if (path.startsWith("/echo-gzip")) {
      const data = gzipSync(JSON.stringify({ method: req.method, path, headers: req.headers, body: body.toString("utf8"), tls, servername, host }));
      res.writeHead(200, { "Content-Type": "application/json", "Content-Encoding": "gzip", "Content-Length": data.length });
      return void res.end(data);
    }
    if (path.startsWith("/echo-range")) {
      // The echo, honouring `Range: bytes=A-B` as a real server would (206 with that slice).
      const data = Buffer.from(JSON.stringify({ method: req.method, path, headers: req.headers, tls, host }));
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
      if (!range) return send(200, "application/json", data);
      const [from, to] = [Number(range[1]), Math.min(Number(range[2]), data.length - 1)];
      res.writeHead(206, { "Content-Type": "application/json", "Content-Range": `bytes ${from}-${to}/${data.length}`, "Content-Length": Math.max(0, to - from + 1) });
      return void res.end(data.subarray(from, to + 1));
    }
    if (path.startsWith("/echo")) {
      return send(200, "application/json", JSON.stringify({ method: req.method, path, headers: req.headers, body: body.toString("utf8"), tls, servername, host }));
    }
    const bytes = /^\/bytes\/(\d+)$/.exec(path);
    if (bytes) return send(200, "application/octet-stream", "x".repeat(Number(bytes[1])));
    if (host === "pypi.example.test") {
      if (path === "/simple/") return send(200, "text/html", `<!DOCTYPE html><html><body><a href="/simple/${wheelName}/">${wheelName}</a></body></html>`);
      if (path === `/simple/${wheelName}/`) {
        return send(200, "text/html", `<!DOCTYPE html><html><body><a href="${scheme}://files.pythonhosted.test/packages/${wheel.name}#sha256=${wheel.sha256}">${wheel.name}</a></body></html>`);
      }
      return send(404, "text/plain", "not found\n");
    }
    if (host === "files.pythonhosted.test" && path === `/packages/${wheel.name}`) return send(200, "application/octet-stream", wheel.bytes);
    if (host === "registry.example.test") {
      const tgzPath = `/${npmName}/-/${npmName}-${npmVersion}.tgz`;
      if (path === `/${npmName}`) {
        const packument = {
          _id: npmName,
          name: npmName,
          "dist-tags": { latest: npmVersion },
          versions: {
            [npmVersion]: {
              name: npmName,
              version: npmVersion,
              description: "sbx egress test package",
              main: "index.js",
              _id: `${npmName}@${npmVersion}`,
              dist: { tarball: `${scheme}://registry.example.test${tgzPath}`, shasum: npm.shasum, integrity: npm.integrity },
            },
          },
          time: { created: "2020-01-01T00:00:00.000Z", modified: "2020-01-01T00:00:00.000Z", [npmVersion]: "2020-01-01T00:00:00.000Z" },
        };
        return send(200, "application/json", JSON.stringify(packument));
      }
      if (path === tgzPath) return send(200, "application/octet-stream", tarball);
      return send(404, "application/json", JSON.stringify({ error: "not found" }));
    }
    if (host === "git.example.test" && path.startsWith("/repo.git/")) return gitBackend(join(dir, "git"), req, body, res, tls);
    return send(200, "text/plain", `hello from ${host} over ${scheme}\n`);
  };

  const track = (server: Server) => {
    server.on("connection", (s: Socket) => {
      sockets.add(s);
      s.once("close", () => sockets.delete(s));
    });
    server.on("secureConnection", (s: Socket) => {
      sockets.add(s);
      s.once("close", () => sockets.delete(s));
    });
  };
  const http = createHttpServer(handler(false));
  const https = createHttpsServer({ key, cert }, handler(true));
  track(http);
  track(https);
  const listen = (s: Server) => new Promise<number>((r) => s.listen(0, "127.0.0.1", () => r((s.address() as AddressInfo).port)));
  const httpPort = await listen(http);
  const httpsPort = await listen(https);
  const resolve: Record<string, string> = {};
  for (const n of NAMES) {
    resolve[`${n}:80`] = `127.0.0.1:${httpPort}`;
    resolve[`${n}:443`] = `127.0.0.1:${httpsPort}`;
  }
  api.httpPort = httpPort;
  api.httpsPort = httpsPort;
  api.resolve = resolve;
  return api;
}
