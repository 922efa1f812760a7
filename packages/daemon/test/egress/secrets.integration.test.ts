import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { createReadStream, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError, Sandbox, type SandboxOptions } from "@sbx/client";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { ok, runBash } from "../helpers/bash.js";
import { parseResponse, startUpstreams, type RawResponse, type SeenRequest, type Upstreams } from "../helpers/upstreams.js";

/**
 * Secrets end to end: a real daemon, real bwrap, real tools inside, and local upstreams by
 * real-looking names (api.openai.com, api.anthropic.com, ...) pinned with `egress.resolve`.
 * The sandbox holds only placeholders; the proxy intercepts TLS to each secret's hosts with
 * the daemon's CA (which every tool inside trusts with no setup), puts the value in where it
 * may, refuses every other place a placeholder turns up, and scrubs values out of what comes
 * back. Opaque tunnels to other hosts are verified with the upstreams' test CA, which the
 * daemon also trusts (egress.extraCaCerts) to verify the secret hosts' upstream side.
 *
 * One daemon and one sandbox for the whole file. Every value used anywhere below is in
 * VALUES, and the last tests look for each of them in the daemon's logs and state dir.
 */

const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const rand = (n: number) => [...randomBytes(n)].map((b) => B62[b % 62]).join("");

/** Every secret value this file hands the daemon, valid or not: none may ever show up outside daemon memory. */
const VALUES: string[] = [];
const value = (v: string) => (VALUES.push(v), v);

const OPENAI = value(`sk-proj-${rand(48)}`);
const ANTHROPIC = value(`sk-ant-api03-${rand(48)}`);
const GIT = value(`ghp_${rand(36)}`);
const PYPI = value(`pypi-${rand(48)}`);
/** A value with characters some JSON writers (\/) and every URL encoder rewrite. */
const QUOTED = value(`tok/en+${rand(32)}=`);

const SECRETS = {
  OPENAI_KEY: { hosts: ["api.openai.com"], value: OPENAI },
  ANTHROPIC_KEY: { hosts: ["api.anthropic.com"], value: ANTHROPIC, body: true },
  GIT_TOKEN: { hosts: ["git.example.test"], value: GIT },
  PYPI_TOKEN: { hosts: ["pypi.example.test", "files.pythonhosted.test"], value: PYPI },
  QUOTED_KEY: { hosts: ["api.openai.com"], value: QUOTED },
  /** Bound to a host whose server shows a self-signed certificate nobody trusts. */
  IMPOSTOR_KEY: { hosts: ["api.impostor.test"], value: value(`imp-${rand(32)}`) },
  /** Bound to a name the (trusted) upstream's certificate does not list. */
  UNLISTED_KEY: { hosts: ["unlisted.example.test"], value: value(`unl-${rand(32)}`) },
} satisfies NonNullable<SandboxOptions["secrets"]>;
type SecretName = keyof typeof SECRETS;
const SANDBOX_VALUES = Object.values(SECRETS).map((s) => s.value);

const PLACEHOLDER_RE = /^SBX_SECRET_[0-9A-Za-z]{32}$/;
/** Where the upstreams' test CA goes inside, for opaque tunnels (curl --cacert). */
const TEST_CA = "/home/user/test-ca.pem";
const ALLOW = ["api.example.test", "other.example.test", "tcp.example.test"];

let up: Upstreams;
let daemon: TestDaemon;
let daemonStdout = "";
let hostDir: string;
let sb: Sandbox;
/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  const port = await new Promise<number>((r) => probe.listen(0, "127.0.0.1", () => r((probe.address() as AddressInfo).port)));
  await new Promise((r) => probe.close(r));
  return port;
}

/** An HTTPS server with a self-signed certificate for api.impostor.test, and what reached it. */
let impostor: Server;
let impostorRequests = 0;
/** Raw TCP upstreams for protocols other than HTTP: one that speaks first, one that records what it gets. */
let banner: net.Server;
let recorder: net.Server;
const recorded: Buffer[] = [];
/** Connections the recorder has seen end, however they ended. */
let recorderClosed = 0;
/** Each secret's placeholder, as the sandbox sees it. */
let P: Record<SecretName, string>;
/** Refusals answered for a secret that the tests below saw (each one must be counted and logged). */
let refusalsSeen = 0;

const run = (script: string, env?: Record<string, string>) => runBash(sb, script, { env });

const formsOf = new Map<string, string[]>();
/** The forms of a value the proxy promises to scrub: itself and its base64 at each alignment (standard and URL-safe). */
function forms(v: string): string[] {
  const known = formsOf.get(v);
  if (known) return known;
  const bytes = Buffer.from(v, "utf8");
  const out = new Set([v]);
  for (let k = 0; k < 3; k++) {
    const enc = Buffer.concat([Buffer.alloc(k), bytes]).toString("base64");
    // only the characters that depend on the value's bytes alone
    const core = enc.slice(Math.ceil((4 * k) / 3), Math.floor(((k + bytes.length) * 8) / 6));
    out.add(core);
    out.add(core.replace(/\+/g, "-").replace(/\//g, "_"));
  }
  formsOf.set(v, [...out]);
  return [...out];
}

/** `text` holds no value of this file in any form the proxy scrubs. */
function expectNoValue(text: string, what = "text"): void {
  for (const v of VALUES) for (const f of forms(v)) expect(text.includes(f), `${what} holds a secret value (form ${f.slice(0, 6)}...)`).toBe(false);
}

const seenAt = (path: string): SeenRequest[] => up.seen.filter((s) => s.path === path);
const seenUnder = (prefix: string): SeenRequest[] => up.seen.filter((s) => s.path.startsWith(prefix));

/** Runs `fn` and returns the egress decisions made meanwhile. */
async function decisions(fn: () => Promise<unknown>): Promise<string[]> {
  const before = (await sb.egressLog()).length;
  await fn();
  return (await sb.egressLog()).slice(before).map((e) => `${e.allowed ? "allowed" : "blocked"} ${e.method} ${e.host}:${e.port}${e.secret ? ` (${e.secret})` : ""}`);
}

/** A 403 the proxy answered for `secret` toward `hostPort`: names both in X-Sbx-Error and the body, and no value anywhere. */
function expectSecretRefusal(res: RawResponse, secret: SecretName, hostPort: string, reason?: RegExp): void {
  expect(res.status, res.raw).toBe(403);
  const why = res.headers["x-sbx-error"] ?? "";
  expect(why).toContain(`secret ${secret} `);
  expect(why).toContain(hostPort);
  if (reason) expect(why).toMatch(reason);
  expect(res.body).toBe(`sbx egress proxy: ${why}\n`);
  expect(res.headers["connection"]).toBe("close");
  expectNoValue(res.raw, "the refusal");
  refusalsSeen++;
}

function dechunk(body: string): string {
  let out = "";
  for (let i = 0; ; ) {
    const eol = body.indexOf("\r\n", i);
    const size = parseInt(body.slice(i, eol), 16);
    if (!(size > 0)) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    i = eol + 2 + size + 2;
  }
}
const bodyOf = (r: RawResponse) => (r.headers["transfer-encoding"] === "chunked" ? dechunk(r.body) : r.body);

/**
 * Sends raw requests to the proxy bridge, each on its own connection: through a CONNECT
 * tunnel and TLS (verified with the default context, i.e. SSL_CERT_FILE) when `tls` names a
 * host, else as plain proxy requests. A number among the parts sleeps that many seconds,
 * so a body goes out in pieces. Returns everything read back until the proxy closes.
 */
const RAW_PY = String.raw`
import base64, json, socket, ssl, sys, time
out = []
for r in json.load(open(sys.argv[1])):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    data = b""
    host = r.get("tls")
    if host:
        s.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (host, host)).encode())
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
            if isinstance(part, (int, float)):
                time.sleep(part)
            else:
                s.sendall(base64.b64decode(part))
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

interface RawRequest {
  /** TLS through a CONNECT tunnel to this host's port 443; plain proxy request when absent. */
  tls?: string;
  parts: Array<string | Buffer | number>;
}

async function raw(requests: RawRequest[]): Promise<RawResponse[]> {
  const file = `/tmp/raw-${rand(8)}.json`;
  const encoded = requests.map((r) => ({ ...r, parts: r.parts.map((p) => (typeof p === "number" ? p : Buffer.from(p as string, "latin1").toString("base64"))) }));
  await sb.fs.writeTextFile(file, JSON.stringify(encoded));
  const out = ok(await run(`python3 /tmp/raw.py ${file}`), "raw.py");
  return (JSON.parse(out) as string[]).map((b) => parseResponse(Buffer.from(b, "base64").toString("latin1")));
}

/** One request with `Connection: close` (and Content-Length for a body) on an intercepted connection to `host`. */
function tlsRequest(host: string, method: string, path: string, headers: string[] = [], body?: string | Buffer): RawRequest {
  const length = body === undefined ? [] : [`Content-Length: ${Buffer.byteLength(body)}`];
  const head = `${method} ${path} HTTP/1.1\r\n${[`Host: ${host}`, ...headers, ...length, "Connection: close"].map((h) => `${h}\r\n`).join("")}\r\n`;
  return { tls: host, parts: body === undefined ? [head] : [head, body] };
}

const chunk = (s: string | Buffer) => Buffer.concat([Buffer.from(`${Buffer.byteLength(s).toString(16)}\r\n`), Buffer.from(s), Buffer.from("\r\n")]);

/** Every regular file below `root` (not following symlinks, skipping sockets, FIFOs and devices). */
async function* filesBelow(root: string): AsyncGenerator<string> {
  for (const e of await readdir(root, { withFileTypes: true })) {
    const path = join(root, e.name);
    if (e.isDirectory()) yield* filesBelow(path);
    else if (e.isFile()) yield path;
  }
}

/** Which of `needles` the file holds, read as bytes in a stream (a needle across two reads is found too). */
async function needlesIn(path: string, needles: Buffer[]): Promise<number[]> {
  const keep = Math.max(...needles.map((n) => n.length)) - 1;
  const found = new Set<number>();
  let tail = Buffer.alloc(0);
  for await (const piece of createReadStream(path, { highWaterMark: 4 << 20 }) as AsyncIterable<Buffer>) {
    const buf = tail.length ? Buffer.concat([tail, piece]) : piece;
    needles.forEach((n, i) => {
      if (!found.has(i) && buf.indexOf(n) !== -1) found.add(i);
    });
    tail = Buffer.from(buf.subarray(Math.max(0, buf.length - keep)));
  }
  return [...found];
}

/** Every regular file below `root` it read, and "path: value #i" for each value of this file found in one. */
async function valuesBelow(root: string, values: string[] = VALUES): Promise<{ hits: string[]; files: string[] }> {
  const needles = values.map((v) => Buffer.from(v, "utf8"));
  const hits: string[] = [];
  const files: string[] = [];
  for await (const path of filesBelow(root)) {
    files.push(path);
    for (const i of await needlesIn(path, needles)) hits.push(`${path}: value #${i}`);
  }
  return { hits, files };
}

/** The daemon's output as captured: stderr (its log) and stdout. */
const daemonOutput = () => `${daemon.logs()}\n${daemonStdout}`;

/** Looks for every value (and its base64 forms) in the daemon's output, and for every value in each file below its state dir. */
async function leaks(): Promise<{ hits: string[]; files: string[] }> {
  const { hits, files } = await valuesBelow(daemon.stateDir);
  const output = daemonOutput();
  VALUES.forEach((v, i) => {
    if (forms(v).some((f) => output.includes(f))) hits.push(`the daemon's output: value #${i}`);
  });
  return { hits, files };
}
/** How many of the two final scans ran (afterAll runs them when a filter left them out). */
let finalScans = 0;

beforeAll(async () => {
  up = await startUpstreams();
  hostDir = mkdtempSync(join(tmpdir(), "sbx-secrets-test-"));
  const testCa = join(hostDir, "test-ca.pem");
  writeFileSync(testCa, up.caPem);
  // no warm pool: every sandbox image below the state dir is one of this file's (and small), so all of them can be read through
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=api.impostor.test", "-addext", "subjectAltName=DNS:api.impostor.test", "-keyout", join(hostDir, "impostor.key"), "-out", join(hostDir, "impostor.pem")], { stdio: "ignore" });
  impostor = createHttpsServer({ key: readFileSync(join(hostDir, "impostor.key")), cert: readFileSync(join(hostDir, "impostor.pem")) }, (_req, res) => {
    impostorRequests++;
    res.end("impostor\n");
  });
  const impostorPort = await new Promise<number>((r) => impostor.listen(0, "127.0.0.1", () => r((impostor.address() as AddressInfo).port)));
  banner = net.createServer((s) => s.end("220 tcp.example.test ready\r\n"));
  recorder = net.createServer((s) => {
    s.on("data", (d) => recorded.push(d)).on("end", () => s.end("bye\n"));
    s.on("error", () => {}).on("close", () => recorderClosed++);
  });
  const listenTcp = (server: net.Server) => new Promise<number>((r) => server.listen(0, "127.0.0.1", () => r((server.address() as AddressInfo).port)));
  const resolve = {
    ...up.resolve,
    "api.impostor.test:443": `127.0.0.1:${impostorPort}`,
    "unlisted.example.test:443": `127.0.0.1:${up.httpsPort}`,
    "tcp.example.test:2525": `127.0.0.1:${await listenTcp(banner)}`,
    "tcp.example.test:2222": `127.0.0.1:${await listenTcp(recorder)}`,
    "tcp.example.test:2999": `127.0.0.1:${await closedPort()}`,
  };
  daemon = await startDaemon({ config: { egress: { resolve, extraCaCerts: [testCa] } }, args: ["--warm-pool", "0"] });
  daemon.proc.stdout!.on("data", (d) => (daemonStdout += d));
  sb = await Sandbox.create({ ...daemon.opts, disk: "512MiB", allowNet: ALLOW, secrets: SECRETS });
  P = (await sb.env.toObject()) as Record<SecretName, string>;
  await sb.fs.writeTextFile(TEST_CA, up.caPem);
  await sb.fs.writeTextFile("/tmp/raw.py", RAW_PY);
});
afterAll(async () => {
  const missed: string[] = [];
  if (daemon && finalScans < 2) {
    spawnSync("sync");
    missed.push(...(await leaks()).hits);
    await sb?.kill().catch(() => {});
    await daemon.stop();
    missed.push(...(await leaks()).hits);
  }
  await sb?.kill().catch(() => {});
  await daemon?.[Symbol.asyncDispose]();
  await up?.close();
  impostor?.close();
  banner?.close();
  recorder?.close();
  if (hostDir) rmSync(hostDir, { recursive: true, force: true });
  if (missed.length) throw new Error(`secret values found after the tests: ${missed.join("; ")}`);
});

describe("the sandbox's environment", () => {
  it("holds a distinct placeholder per secret, the same through env, sb.env.get and sb.env.toObject", async () => {
    const names = Object.keys(SECRETS) as SecretName[];
    for (const name of names) {
      expect(P[name]).toMatch(PLACEHOLDER_RE);
      expect(await sb.env.get(name)).toBe(P[name]);
    }
    expect(new Set(names.map((n) => P[n])).size).toBe(names.length);
    expect(await sb.env.toObject()).toMatchObject(Object.fromEntries(names.map((n) => [n, P[n]])));
    const inside = ok(await run(`env | grep -E '^(${names.join("|")})=' | LC_ALL=C sort`), "env");
    expect(inside).toBe(
      names
        .slice()
        .sort()
        .map((n) => `${n}=${P[n]}\n`)
        .join(""),
    );
    // and the trust variables point every tool at the bundle with the daemon's CA
    const trust = ok(await run("env | grep -E '^(SSL_CERT_FILE|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|GIT_SSL_CAINFO|PIP_CERT|DENO_CERT|NODE_EXTRA_CA_CERTS)=' | LC_ALL=C sort"), "env");
    expect(trust).toBe(
      [
        "CURL_CA_BUNDLE=/.sbx/ca-bundle.pem",
        "DENO_CERT=/.sbx/ca-bundle.pem",
        "GIT_SSL_CAINFO=/.sbx/ca-bundle.pem",
        "NODE_EXTRA_CA_CERTS=/.sbx/ca.pem",
        "PIP_CERT=/.sbx/ca-bundle.pem",
        "REQUESTS_CA_BUNDLE=/.sbx/ca-bundle.pem",
        "SSL_CERT_FILE=/.sbx/ca-bundle.pem",
        "",
      ].join("\n"),
    );
  });
});

describe("substitution: the secret's host gets the value, the sandbox gets the placeholder back", () => {
  it("curl: Bearer, x-api-key and Basic (-u) headers", async () => {
    const log = await decisions(async () => {
      const out = ok(
        await run(
          [
            `curl -sS --fail -H "Authorization: Bearer $OPENAI_KEY" https://api.openai.com/echo/curl-bearer`,
            `curl -sS --fail -H "x-api-key: $ANTHROPIC_KEY" https://api.anthropic.com/echo/curl-x-api-key`,
            `curl -sS --fail -u "user:$OPENAI_KEY" https://api.openai.com/echo/curl-basic`,
          ].join(" && echo && "),
        ),
        "curl",
      );
      expectNoValue(out, "curl's output");
      const [bearer, apiKey, basic] = out.split("\n").map((l) => JSON.parse(l));
      expect(bearer).toMatchObject({ path: "/echo/curl-bearer", tls: true, servername: "api.openai.com", headers: { authorization: `Bearer ${P.OPENAI_KEY}` } });
      expect(apiKey).toMatchObject({ path: "/echo/curl-x-api-key", tls: true, servername: "api.anthropic.com", headers: { "x-api-key": P.ANTHROPIC_KEY } });
      // the echoed Basic credential is base64 of "user:<value>": the value's base64 is replaced by the placeholder
      expect(basic.headers.authorization).toMatch(/^Basic [A-Za-z0-9+/]*SBX_SECRET_/);
      expect(basic.headers.authorization).toContain(P.OPENAI_KEY);
    });
    expect(log).toEqual(["allowed CONNECT api.openai.com:443", "allowed CONNECT api.anthropic.com:443", "allowed CONNECT api.openai.com:443"]);
    expect(seenAt("/echo/curl-bearer")[0]!.headers.authorization).toBe(`Bearer ${OPENAI}`);
    expect(seenAt("/echo/curl-x-api-key")[0]!.headers["x-api-key"]).toBe(ANTHROPIC);
    expect(seenAt("/echo/curl-basic")[0]!.headers.authorization).toBe(`Basic ${Buffer.from(`user:${OPENAI}`).toString("base64")}`);
    // the proxy's own TLS to the upstream: SNI of the secret's host, verified with egress.extraCaCerts
    expect(seenAt("/echo/curl-bearer")[0]).toMatchObject({ tls: true, servername: "api.openai.com", complete: true });
  });

  it("Python requests: a header, and a JSON body (body: true, Content-Length rewritten); Basic via auth=", async () => {
    const script = `
import json, os, requests
s = requests.Session()
a = s.post("https://api.anthropic.com/echo/requests-body", headers={"x-api-key": os.environ["ANTHROPIC_KEY"]}, json={"key": os.environ["ANTHROPIC_KEY"], "n": 1}, timeout=10)
b = s.get("https://api.openai.com/echo/requests-basic", auth=("user", os.environ["OPENAI_KEY"]), timeout=10)
print(json.dumps([[a.status_code, a.json()], [b.status_code, b.json()]]))
`;
    await sb.fs.writeTextFile("requests_secrets.py", script);
    const out = ok(await run("python3 requests_secrets.py"), "python3 requests");
    expectNoValue(out, "requests' output");
    const [[sa, a], [sb2, b]] = JSON.parse(out);
    expect([sa, sb2]).toEqual([200, 200]);
    expect(a.headers["x-api-key"]).toBe(P.ANTHROPIC_KEY);
    expect(JSON.parse(a.body)).toEqual({ key: P.ANTHROPIC_KEY, n: 1 });
    expect(a.headers["user-agent"]).toMatch(/^python-requests\//);
    expect(b.headers.authorization).toContain(P.OPENAI_KEY);

    const [body] = seenAt("/echo/requests-body");
    expect(body!.headers["x-api-key"]).toBe(ANTHROPIC);
    expect(JSON.parse(body!.body)).toEqual({ key: ANTHROPIC, n: 1 });
    expect(body!.complete).toBe(true);
    // the body's length changed, so it went on chunked
    expect(body!.headers["content-length"]).toBeUndefined();
    expect(body!.headers["transfer-encoding"]).toBe("chunked");
    expect(seenAt("/echo/requests-basic")[0]!.headers.authorization).toBe(`Basic ${Buffer.from(`user:${OPENAI}`).toString("base64")}`);
  });

  it("Node: global fetch and the https module (through the preload, trusting the CA via NODE_EXTRA_CA_CERTS)", async () => {
    const script = `
import https from "node:https";
const a = await (await fetch("https://api.openai.com/echo/node-fetch", { headers: { authorization: "Bearer " + process.env.OPENAI_KEY } })).json();
const body = JSON.stringify({ key: process.env.ANTHROPIC_KEY });
const b = await new Promise((resolve, reject) => {
  const req = https.request("https://api.anthropic.com/echo/node-https", { method: "POST", headers: { "x-api-key": process.env.ANTHROPIC_KEY, "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
    let d = "";
    res.on("data", (c) => (d += c));
    res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(d) }));
  });
  req.on("error", reject);
  req.end(body);
});
console.log(JSON.stringify([a, b]));
`;
    await sb.fs.writeTextFile("node_secrets.mjs", script);
    const log = await decisions(async () => {
      const out = ok(await run("node node_secrets.mjs"), "node");
      expectNoValue(out, "node's output");
      const [a, b] = JSON.parse(out);
      expect(a).toMatchObject({ path: "/echo/node-fetch", tls: true, headers: { authorization: `Bearer ${P.OPENAI_KEY}` } });
      expect(b.status).toBe(200);
      expect(b.body).toMatchObject({ path: "/echo/node-https", method: "POST", headers: { "x-api-key": P.ANTHROPIC_KEY } });
      expect(JSON.parse(b.body.body)).toEqual({ key: P.ANTHROPIC_KEY });
    });
    expect(log).toEqual(["allowed CONNECT api.openai.com:443", "allowed CONNECT api.anthropic.com:443"]);
    expect(seenAt("/echo/node-fetch")[0]!.headers.authorization).toBe(`Bearer ${OPENAI}`);
    expect(seenAt("/echo/node-https")[0]!.headers["x-api-key"]).toBe(ANTHROPIC);
    expect(JSON.parse(seenAt("/echo/node-https")[0]!.body)).toEqual({ key: ANTHROPIC });
  });

  it("git: clone with the token in http.extraHeader (Bearer), ls-remote with it as a Basic credential", async () => {
    const env = { GIT_TERMINAL_PROMPT: "0" };
    const before = up.seen.length;
    const cloned = ok(
      await run(`git -c http.extraHeader="Authorization: Bearer $GIT_TOKEN" clone -q https://git.example.test/repo.git /tmp/clone-secret && git -C /tmp/clone-secret rev-parse HEAD && cat /tmp/clone-secret/${up.git.file}`, env),
      "git clone",
    );
    expect(cloned).toBe(`${up.git.head}\n${up.git.content}`);
    const cloneSeen = up.seen.slice(before);
    const middle = up.seen.length;
    const listed = ok(await run(`git -c http.extraHeader="Authorization: Basic $(printf 'x-access-token:%s' "$GIT_TOKEN" | base64 -w0)" ls-remote https://git.example.test/repo.git`, env), "git ls-remote");
    expect(listed).toBe(`${up.git.head}\tHEAD\n${up.git.head}\trefs/heads/main\n`);
    const lsSeen = up.seen.slice(middle);

    // info/refs, then ls-refs and fetch (protocol v2): every request carried the value, over the proxy's TLS
    expect(cloneSeen.map((s) => s.path)).toContain("/repo.git/git-upload-pack");
    expect(cloneSeen.every((s) => s.host === "git.example.test" && s.tls && s.headers.authorization === `Bearer ${GIT}`)).toBe(true);
    expect(lsSeen.length).toBeGreaterThan(0);
    expect(lsSeen.every((s) => s.headers.authorization === `Basic ${Buffer.from(`x-access-token:${GIT}`).toString("base64")}`)).toBe(true);
    // git kept no copy of the header: the clone's config names the plain URL
    expect(ok(await run("git -C /tmp/clone-secret config --get remote.origin.url"), "git config")).toBe("https://git.example.test/repo.git\n");
  });

  it("pip: installs from an index whose URL carries the token (sent as Basic), index and file host both intercepted", async () => {
    const log = await decisions(async () => {
      const out = ok(
        await run(
          [
            `python3 -m pip install --no-deps --no-cache-dir --disable-pip-version-check --progress-bar off --target /tmp/pip-target --index-url "https://__token__:$PYPI_TOKEN@pypi.example.test/simple/" sbxdemo`,
            `python3 -c "import sys; sys.path.insert(0, '/tmp/pip-target'); import sbxdemo; print('value', sbxdemo.VALUE)"`,
          ].join(" && "),
        ),
        "pip install",
      );
      expectNoValue(out, "pip's output");
      expect(out).toContain("Successfully installed sbxdemo-1.0");
      expect(out.endsWith("value 42\n")).toBe(true);
    });
    expect(log).toEqual(["allowed CONNECT pypi.example.test:443", "allowed CONNECT files.pythonhosted.test:443"]);
    const index = seenAt("/simple/sbxdemo/");
    expect(index.map((s) => [s.tls, s.headers.authorization])).toEqual([[true, `Basic ${Buffer.from(`__token__:${PYPI}`).toString("base64")}`]]);
    // pip keeps the index's credential to the index
    expect(seenAt(`/packages/${up.wheel.name}`).map((s) => [s.host, s.tls, s.headers.authorization])).toEqual([["files.pythonhosted.test", true, undefined]]);
  });

  it("Deno: fetch (trusting the CA via DENO_CERT)", async () => {
    const root = fileURLToPath(new URL("../../../../", import.meta.url));
    const pkg = join(root, "node_modules", ".pnpm", "node_modules", "@deno", `${process.platform}-${process.arch === "x64" ? "x64" : "arm64"}-glibc`, "deno");
    if (!existsSync(pkg)) throw new Error("deno is missing: `pnpm install` brings it (the workspace's deno devDependency)");
    await sb.fs.upload(realpathSync(pkg), "/tmp/deno");
    await sb.fs.writeTextFile(
      "deno_secrets.ts",
      `const r = await fetch("https://api.openai.com/echo/deno", { headers: { authorization: "Bearer " + Deno.env.get("OPENAI_KEY") } });\nconsole.log(JSON.stringify({ status: r.status, body: await r.json() }));\n`,
    );
    const out = ok(await run("/tmp/deno run -A deno_secrets.ts", { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DENO_DIR: "/tmp/deno-dir" }), "deno");
    expectNoValue(out, "deno's output");
    const { status, body } = JSON.parse(out);
    expect(status).toBe(200);
    expect(body).toMatchObject({ path: "/echo/deno", tls: true, headers: { authorization: `Bearer ${P.OPENAI_KEY}` } });
    expect(body.headers["user-agent"]).toMatch(/^Deno\//);
    expect(seenAt("/echo/deno")[0]!.headers.authorization).toBe(`Bearer ${OPENAI}`);
  }, 60_000);

  it("with body: true, a placeholder split across chunks of a streamed (chunked) body is still substituted", async () => {
    const body = `{"key":"${P.ANTHROPIC_KEY}","again":"${P.ANTHROPIC_KEY}"}`;
    const at = body.indexOf("SBX_SEC") + 7; // inside the prefix
    const at2 = body.indexOf(P.ANTHROPIC_KEY, at) + 25; // inside the random part of the second one
    const head = "POST /echo/body-split HTTP/1.1\r\nHost: api.anthropic.com\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    const [res] = await raw([{ tls: "api.anthropic.com", parts: [head, chunk(body.slice(0, at)), 0.3, chunk(body.slice(at, at2)), 0.3, chunk(body.slice(at2)), "0\r\n\r\n"] }]);
    expect(res!.status, res!.raw).toBe(200);
    expectNoValue(res!.raw, "the response");
    expect(JSON.parse(JSON.parse(bodyOf(res!)).body)).toEqual({ key: P.ANTHROPIC_KEY, again: P.ANTHROPIC_KEY });
    const [seen] = seenAt("/echo/body-split");
    expect(seen!.complete).toBe(true);
    expect(JSON.parse(seen!.body)).toEqual({ key: ANTHROPIC, again: ANTHROPIC });
  });
});

describe("trust: the daemon's CA signs what the sandbox sees for a secret host, and every tool trusts it", () => {
  it("a secret host shows a leaf from the daemon's CA (ALPN http/1.1); any other host its own certificate, untouched", async () => {
    const script = `
import json, socket, ssl
def peer(host, cafile=None):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(("CONNECT %s:443 HTTP/1.1\\r\\nHost: %s:443\\r\\n\\r\\n" % (host, host)).encode())
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        head += s.recv(1)
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    t = ctx.wrap_socket(s, server_hostname=host)
    cert = t.getpeercert()
    out = [dict(x[0] for x in cert["issuer"])["commonName"], [v for k, v in cert["subjectAltName"]], t.selected_alpn_protocol()]
    t.close()
    return out
print(json.dumps([peer("api.openai.com"), peer("other.example.test", ${JSON.stringify(TEST_CA)})]))
`;
    await sb.fs.writeTextFile("peer.py", script);
    const [intercepted, opaque] = JSON.parse(ok(await run("python3 peer.py"), "peer.py"));
    const ca = new X509Certificate(readFileSync(join(daemon.stateDir, "ca", "ca.pem")));
    const caName = /CN=(.*)/.exec(ca.subject)![1]!;
    expect(caName).toMatch(/^sbx egress CA [0-9a-f]{12}$/);
    expect(intercepted).toEqual([caName, ["api.openai.com"], "http/1.1"]);
    expect(opaque[0]).toBe("sbx egress test CA");
    expect(opaque[1]).toContain("other.example.test");
  });

  it("curl trusts it through CURL_CA_BUNDLE, through the system bundle path alone, and as /.sbx/ca.pem; the test CA alone does not verify it", async () => {
    const code = (extra: string, path: string) => `curl -sS -o /dev/null -w '%{http_code}\\n' ${extra} -H "Authorization: Bearer $OPENAI_KEY" https://api.openai.com/echo/${path}; echo "exit=$?"`;
    const out = ok(
      await run(
        [
          code("", "trust-curl-env"),
          `env -u CURL_CA_BUNDLE -u SSL_CERT_FILE ${code("", "trust-curl-system")}`,
          `env -u CURL_CA_BUNDLE -u SSL_CERT_FILE ${code("--cacert /etc/ssl/certs/ca-certificates.crt", "trust-curl-system-explicit")}`,
          `env -u CURL_CA_BUNDLE -u SSL_CERT_FILE ${code("--cacert /.sbx/ca.pem", "trust-curl-ca")}`,
          code(`--cacert ${TEST_CA}`, "trust-curl-test-ca"),
        ].join("\n"),
      ),
      "curl",
    );
    expect(out).toBe("200\nexit=0\n200\nexit=0\n200\nexit=0\n200\nexit=0\n000\nexit=60\n");
    expect(seenAt("/echo/trust-curl-system")[0]!.headers.authorization).toBe(`Bearer ${OPENAI}`);
    expect(seenAt("/echo/trust-curl-test-ca")).toEqual([]);
  });

  it("Python's ssl (urllib) trusts it through SSL_CERT_FILE and through OpenSSL's default path", async () => {
    const script = `
import json, os, urllib.request
req = urllib.request.Request("https://api.openai.com/echo/" + os.environ["WHERE"], headers={"Authorization": "Bearer " + os.environ["OPENAI_KEY"]})
print(urllib.request.urlopen(req, timeout=10).read().decode())
`;
    await sb.fs.writeTextFile("urllib_secrets.py", script);
    const out = ok(await run("WHERE=urllib-env python3 urllib_secrets.py && WHERE=urllib-default env -u SSL_CERT_FILE python3 urllib_secrets.py"), "urllib");
    expectNoValue(out, "urllib's output");
    const [a, b] = out.trim().split("\n").map((l) => JSON.parse(l));
    expect(a).toMatchObject({ path: "/echo/urllib-env", headers: { authorization: `Bearer ${P.OPENAI_KEY}` } });
    expect(b).toMatchObject({ path: "/echo/urllib-default", headers: { authorization: `Bearer ${P.OPENAI_KEY}` } });
    expect(seenAt("/echo/urllib-default")[0]!.headers.authorization).toBe(`Bearer ${OPENAI}`);
  });

  it("the CA certificate inside is the daemon's; the bundle (also over the system bundle path) is the host's roots plus it", async () => {
    const pem = readFileSync(join(daemon.stateDir, "ca", "ca.pem"), "utf8");
    expect(await sb.fs.readTextFile("/.sbx/ca.pem")).toBe(pem);
    const bundle = await sb.fs.readTextFile("/.sbx/ca-bundle.pem");
    expect(bundle.endsWith(pem)).toBe(true);
    expect(bundle.startsWith(readFileSync("/etc/ssl/certs/ca-certificates.crt", "utf8").trimEnd())).toBe(true);
    expect(await sb.fs.readTextFile("/etc/ssl/certs/ca-certificates.crt")).toBe(bundle);
  });
});

describe("where a placeholder is not substituted", () => {
  it("to another allowed host (an opaque tunnel, verified with the test CA): it passes unchanged, and nothing is refused", async () => {
    const log = await decisions(async () => {
      const out = ok(await run(`curl -sS --fail --cacert ${TEST_CA} -H "Authorization: Bearer $OPENAI_KEY" https://other.example.test/echo/opaque`), "curl");
      expect(JSON.parse(out)).toMatchObject({ path: "/echo/opaque", servername: "other.example.test", headers: { authorization: `Bearer ${P.OPENAI_KEY}` } });
      // not intercepted: the daemon's CA does not sign for it, so the default trust fails
      const r = await run(`curl -sS -o /dev/null https://other.example.test/echo/opaque-untrusted`);
      expect(r.code).toBe(60);
    });
    expect(log).toEqual(["allowed CONNECT other.example.test:443", "allowed CONNECT other.example.test:443"]);
    expect(seenAt("/echo/opaque").map((s) => s.headers.authorization)).toEqual([`Bearer ${P.OPENAI_KEY}`]);
  });

  it("over plain HTTP, to any host (header, Basic, its own host, body): 403 naming secret and host, and the upstream never gets it", async () => {
    const before = (await sb.usage()).egress.blocked;
    const curl = (args: string) => `curl -sS -D - ${args}; echo '-----'`;
    const out = ok(
      await run(
        [
          curl(`-H "Authorization: Bearer $OPENAI_KEY" http://api.example.test/echo/plain-header`),
          curl(`-u "user:$OPENAI_KEY" http://api.example.test/echo/plain-basic`),
          curl(`-H "x-api-key: $ANTHROPIC_KEY" http://api.anthropic.com/echo/plain-own-host`),
          curl(`--data-binary "token=$ANTHROPIC_KEY" http://api.example.test/echo/plain-body`),
        ].join("\n"),
      ),
      "curl",
    );
    const [header, basic, own, body] = out.split("-----\n").map((r) => parseResponse(r));
    const plain = /was sent over plain HTTP to .*; secrets go only over HTTPS to their own hosts/;
    expectSecretRefusal(header!, "OPENAI_KEY", "api.example.test:80", plain);
    expectSecretRefusal(basic!, "OPENAI_KEY", "api.example.test:80", plain);
    expectSecretRefusal(own!, "ANTHROPIC_KEY", "api.anthropic.com:80", plain);
    expectSecretRefusal(body!, "ANTHROPIC_KEY", "api.example.test:80", plain);
    expect(seenUnder("/echo/plain-")).toEqual([]);
    expect((await sb.usage()).egress.blocked - before).toBe(4);
  });

  it("in the URL (query string, path, percent-encoded path): 403, and the upstream never gets it", async () => {
    const pct = [...P.OPENAI_KEY].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).join("");
    const res = await raw([
      tlsRequest("api.openai.com", "GET", `/echo/url-query?key=${P.OPENAI_KEY}`),
      tlsRequest("api.openai.com", "GET", `/echo/url-path/${P.OPENAI_KEY}`),
      tlsRequest("api.openai.com", "GET", `/echo/url-pct/%53${P.OPENAI_KEY.slice(1)}`),
      tlsRequest("api.openai.com", "GET", `/echo/url-pct-all/${pct}`),
      tlsRequest("api.openai.com", "GET", `/echo/url-pct-query?key=${encodeURIComponent(P.OPENAI_KEY).replace(/_/g, "%5F")}`),
    ]);
    for (const r of res) expectSecretRefusal(r, "OPENAI_KEY", "api.openai.com:443", /is in the URL of a request to/);
    expect(seenUnder("/echo/url-")).toEqual([]);
  });

  it("in the URL behind a malformed percent-escape: still 403", async () => {
    // decodeURIComponent throws on "%ZZ", and the URL is then only checked as written
    const [res] = await raw([tlsRequest("api.openai.com", "GET", `/echo/url-malformed/%ZZ/%53${P.OPENAI_KEY.slice(1)}`)]);
    expect(seenUnder("/echo/url-malformed")).toEqual([]);
    expectSecretRefusal(res!, "OPENAI_KEY", "api.openai.com:443", /is in the URL of a request to/);
  });

  it("in a header name: 403", async () => {
    const [res] = await raw([tlsRequest("api.openai.com", "GET", "/echo/header-name", [`X-${P.OPENAI_KEY}: 1`])]);
    expectSecretRefusal(res!, "OPENAI_KEY", "api.openai.com:443", /is in a header name/);
    expect(seenAt("/echo/header-name")).toEqual([]);
  });

  it("in the body of a secret without body: true: 403, and the upstream never gets a complete body (even when most of it already went)", async () => {
    const res = await raw([
      tlsRequest("api.openai.com", "POST", "/echo/body-not-allowed", ["Content-Type: application/json"], `{"key":"${P.OPENAI_KEY}"}`),
      // 200 kB stream on to the upstream before the placeholder shows up
      tlsRequest("api.openai.com", "POST", "/echo/body-not-allowed-late", ["Content-Type: text/plain"], `${"x".repeat(200_000)}${P.OPENAI_KEY}tail`),
    ]);
    for (const r of res) expectSecretRefusal(r, "OPENAI_KEY", "api.openai.com:443", /it is substituted in bodies only when created with body: true/);
    for (const path of ["/echo/body-not-allowed", "/echo/body-not-allowed-late"]) {
      expect(seenAt(path).filter((s) => s.complete)).toEqual([]);
      expect(seenAt(path).every((s) => !s.body.includes(OPENAI) && !s.body.includes("SBX_SECRET_"))).toBe(true);
    }
  });

  it("under a second secret's host (header, or body where that host takes bodies): 403 naming the secret and where it is bound", async () => {
    const res = await raw([
      tlsRequest("api.anthropic.com", "GET", "/echo/cross-header", [`Authorization: Bearer ${P.OPENAI_KEY}`]),
      tlsRequest("api.anthropic.com", "POST", "/echo/cross-body", [`x-api-key: ${P.ANTHROPIC_KEY}`], `{"other":"${P.OPENAI_KEY}"}`),
      tlsRequest("api.openai.com", "POST", "/echo/cross-body-2", [`Authorization: Bearer ${P.OPENAI_KEY}`], `{"other":"${P.ANTHROPIC_KEY}"}`),
    ]);
    expectSecretRefusal(res[0]!, "OPENAI_KEY", "api.anthropic.com:443", /is not for api\.anthropic\.com:443; it is bound to api\.openai\.com$/);
    expectSecretRefusal(res[1]!, "OPENAI_KEY", "api.anthropic.com:443", /is not for api\.anthropic\.com:443; it is bound to api\.openai\.com$/);
    expectSecretRefusal(res[2]!, "ANTHROPIC_KEY", "api.openai.com:443", /is not for api\.openai\.com:443; it is bound to api\.anthropic\.com$/);
    expect(seenAt("/echo/cross-header")).toEqual([]);
    for (const path of ["/echo/cross-body", "/echo/cross-body-2"]) expect(seenAt(path).filter((s) => s.complete)).toEqual([]);
  });

  it("in a WebSocket upgrade (intercepted: Authorization or subprotocol; plain HTTP): 403, and the upstream never gets it", async () => {
    const ws = ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"];
    const wsHead = (host: string, path: string, extra: string) => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${[...ws, extra].map((h) => `${h}\r\n`).join("")}\r\n`;
    const res = await raw([
      { tls: "api.openai.com", parts: [wsHead("api.openai.com", "/ws/auth", `Authorization: Bearer ${P.OPENAI_KEY}`)] },
      { tls: "api.openai.com", parts: [wsHead("api.openai.com", "/ws/protocol", `Sec-WebSocket-Protocol: chat, ${P.OPENAI_KEY}`)] },
      { parts: [wsHead("api.example.test", "http://api.example.test/ws/plain", `Authorization: Bearer ${P.OPENAI_KEY}`)] },
      { tls: "api.openai.com", parts: [wsHead("api.openai.com", `/ws/url?k=${P.OPENAI_KEY.replaceAll("_", "%5F")}`, "X-None: 1")] },
      { tls: "api.openai.com", parts: [wsHead("api.openai.com", "/ws/basic", `Authorization: Basic ${Buffer.from(`u:${P.OPENAI_KEY}`).toString("base64")}`)] },
    ]);
    expectSecretRefusal(res[0]!, "OPENAI_KEY", "api.openai.com:443", /is in a WebSocket upgrade/);
    expectSecretRefusal(res[1]!, "OPENAI_KEY", "api.openai.com:443", /is in a WebSocket upgrade/);
    expectSecretRefusal(res[2]!, "OPENAI_KEY", "api.example.test:80", /over plain HTTP/);
    expectSecretRefusal(res[3]!, "OPENAI_KEY", "api.openai.com:443", /is in a WebSocket upgrade/);
    expectSecretRefusal(res[4]!, "OPENAI_KEY", "api.openai.com:443", /is in a WebSocket upgrade/);
    expect(seenUnder("/ws/")).toEqual([]);
  });

  it("in a gzip'd request body: 403 even where body: true; a gzip'd body without one passes as it is", async () => {
    const carrying = gzipSync(`{"key":"${P.ANTHROPIC_KEY}"}`);
    const clean = gzipSync(`{"key":"nothing secret"}`);
    const res = await raw([
      tlsRequest("api.anthropic.com", "POST", "/echo/gzip-body", ["Content-Type: application/json", "Content-Encoding: gzip"], carrying),
      tlsRequest("api.anthropic.com", "POST", "/echo/gzip-clean", ["Content-Type: application/json", "Content-Encoding: gzip"], clean),
    ]);
    expectSecretRefusal(res[0]!, "ANTHROPIC_KEY", "api.anthropic.com:443", /is in a compressed request body/);
    expect(seenAt("/echo/gzip-body").filter((s) => s.complete)).toEqual([]);
    expect(res[1]!.status, res[1]!.raw).toBe(200);
    const [seen] = seenAt("/echo/gzip-clean");
    expect(seen).toMatchObject({ complete: true, headers: { "content-encoding": "gzip" } });
    expect(Buffer.from(seen!.body, "latin1").equals(clean)).toBe(true);
  });

  it("Node fetch of an http:// URL (which the preload tunnels with CONNECT) carrying a placeholder is refused like any plain HTTP", async () => {
    await sb.fs.writeTextFile(
      "fetch_plain.mjs",
      `const r = await fetch("http://api.example.test/echo/fetch-plain", { headers: { authorization: "Bearer " + process.env.OPENAI_KEY } });\nconsole.log(r.status, r.headers.get("x-sbx-error"));\n`,
    );
    const out = ok(await run("node fetch_plain.mjs"), "node");
    // The proxy reads the plaintext inside the tunnel, so fetch gets the refusal itself.
    expect(out).toBe("403 secret OPENAI_KEY was sent over plain HTTP to api.example.test:80; secrets go only over HTTPS to their own hosts\n");
    expect(seenAt("/echo/fetch-plain")).toEqual([]);
    refusalsSeen++;
  });
});

describe("responses are scrubbed", () => {
  it("a gzip'd echo is decoded and scrubbed (curl with and without --compressed, requests)", async () => {
    const script = `
import json, os, requests
r = requests.get("https://api.openai.com/echo-gzip/requests", headers={"Authorization": "Bearer " + os.environ["OPENAI_KEY"]}, timeout=10)
print(json.dumps([r.status_code, r.headers.get("content-encoding"), r.json()]))
`;
    await sb.fs.writeTextFile("gzip_secrets.py", script);
    const out = ok(
      await run(
        [
          `curl -sS --fail -D /tmp/gz-headers -H "Authorization: Bearer $OPENAI_KEY" https://api.openai.com/echo-gzip/curl`,
          `grep -ci '^content-encoding' /tmp/gz-headers || true`,
          `curl -sS --fail --compressed -H "Authorization: Bearer $OPENAI_KEY" https://api.openai.com/echo-gzip/curl-compressed`,
          `python3 gzip_secrets.py`,
        ].join(" && echo && "),
      ),
      "gzip echo",
    );
    expectNoValue(out, "the gzip'd echoes");
    const [plainCurl, encodings, compressed, requestsLine] = out.trim().split("\n").filter(Boolean);
    expect(JSON.parse(plainCurl!).headers.authorization).toBe(`Bearer ${P.OPENAI_KEY}`);
    // the proxy decoded it to scrub it, and sent it on decoded
    expect(encodings).toBe("0");
    expect(JSON.parse(compressed!).headers.authorization).toBe(`Bearer ${P.OPENAI_KEY}`);
    const [status, encoding, echo] = JSON.parse(requestsLine!);
    expect([status, encoding]).toEqual([200, null]);
    expect(echo.headers.authorization).toBe(`Bearer ${P.OPENAI_KEY}`);
    for (const path of ["/echo-gzip/curl", "/echo-gzip/curl-compressed", "/echo-gzip/requests"]) expect(seenAt(path)[0]!.headers.authorization).toBe(`Bearer ${OPENAI}`);
  });

  it("a plain-HTTP upstream leaking a value in headers, in base64 forms and across the chunks of a 1 MiB body: the sandbox gets placeholders", async () => {
    // the value at every offset modulo 4096 sooner or later, so some occurrences straddle reads
    let big = "";
    while (big.length < 1 << 20) big += `${"x".repeat(big.length % 4093)}[${OPENAI}]`;
    up.canned.set("/canned/plain-big", { body: big, headers: { "X-Leak": `token=${OPENAI}`, "X-Leak-B64": Buffer.from(`user:${OPENAI}`).toString("base64") } });
    const b64 = [0, 1, 2].map((k) => Buffer.from(`${"u:".slice(0, k)}${OPENAI}|${ANTHROPIC}`).toString("base64"));
    const b64url = b64.map((s) => s.replace(/\+/g, "-").replace(/\//g, "_"));
    up.canned.set("/canned/plain-b64", { body: [...b64, ...b64url].join("\n") });
    up.canned.set("/canned/plain-gzip", { body: `gz ${GIT} ${PYPI}`, gzip: true });
    const out = ok(
      await run(
        [
          "curl -sS --fail -D /tmp/leak-headers -o /tmp/leak-big http://api.example.test/canned/plain-big",
          "cat /tmp/leak-headers | tr -d '\\r' | grep -i '^x-leak'",
          "curl -sS --fail http://api.example.test/canned/plain-b64",
          "echo",
          "curl -sS --fail http://api.example.test/canned/plain-gzip",
        ].join(" && "),
      ),
      "curl",
    );
    expectNoValue(out, "the leaking responses");
    const bigInside = await sb.fs.readTextFile("/tmp/leak-big");
    expectNoValue(bigInside, "the 1 MiB body");
    expect(bigInside).toBe(big.split(OPENAI).join(P.OPENAI_KEY));
    await sb.fs.remove("/tmp/leak-big");
    const lines = out.trim().split("\n");
    expect(lines[0]).toBe(`X-Leak: token=${P.OPENAI_KEY}`);
    expect(lines[1]).toContain(P.OPENAI_KEY);
    expect(lines.slice(2, 8).every((l) => l.includes(P.OPENAI_KEY) && l.includes(P.ANTHROPIC_KEY))).toBe(true);
    expect(lines[8]).toBe(`gz ${P.GIT_TOKEN} ${P.PYPI_TOKEN}`);
  });

  it("an intercepted upstream's gzip'd leak of every secret's value comes back with each one's placeholder", async () => {
    up.canned.set("/canned/tls-all", { body: SANDBOX_VALUES.join("\n"), gzip: true, headers: { "X-All": SANDBOX_VALUES.join(" ") } });
    const out = ok(await run(`curl -sS --fail --suppress-connect-headers -D - https://api.openai.com/canned/tls-all`), "curl");
    expectNoValue(out, "the leaking response");
    const res = parseResponse(out);
    const names = Object.keys(SECRETS) as SecretName[];
    expect(res.headers["x-all"]).toBe(names.map((n) => P[n]).join(" "));
    expect(res.body).toBe(names.map((n) => P[n]).join("\n"));
    expect(res.headers["content-encoding"]).toBeUndefined();
    // brotli and deflate are read too
    up.canned.set("/canned/tls-br", { body: brotliCompressSync(SANDBOX_VALUES.join("\n")), headers: { "Content-Encoding": "br" } });
    up.canned.set("/canned/tls-deflate", { body: deflateSync(SANDBOX_VALUES.join("\n")), headers: { "Content-Encoding": "deflate" } });
    const other = ok(await run(`curl -sS --fail https://api.openai.com/canned/tls-br && echo && curl -sS --fail https://api.openai.com/canned/tls-deflate`), "curl");
    expectNoValue(other, "the br and deflate leaks");
    expect(other).toBe(`${names.map((n) => P[n]).join("\n")}\n${names.map((n) => P[n]).join("\n")}`);
  });

  it("a value's JSON (\\/) and percent-encoded spellings do not come back either", async () => {
    const out = ok(await run(`curl -sS --fail -H "X-Api-Key: $QUOTED_KEY" https://api.openai.com/echo/quoted`), "curl");
    expect(seenAt("/echo/quoted")[0]!.headers["x-api-key"]).toBe(QUOTED);
    expect(JSON.parse(out).headers["x-api-key"]).toBe(P.QUOTED_KEY);
    const spellings = [QUOTED.replace(/\//g, "\\/"), encodeURIComponent(QUOTED), encodeURIComponent(QUOTED).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())];
    up.canned.set("/canned/spellings", { body: Buffer.from(spellings.join("\n")), headers: {} });
    const back = ok(await run(`curl -sS --fail https://api.openai.com/canned/spellings`), "curl");
    expect(back).toBe([P.QUOTED_KEY, P.QUOTED_KEY, P.QUOTED_KEY].join("\n"));
  });
});

describe("tunnels of other protocols, in a sandbox that holds secrets", () => {
  /**
   * Opens a CONNECT tunnel from inside to tcp.example.test:PORT, sends DATA (with $VAR expanded
   * from the environment, if any), half-closes, and prints what comes back until the far end
   * closes ("closed" if the connection is reset).
   */
  const TUNNEL_PY = String.raw`
import os, socket, sys
port, data = sys.argv[1], os.path.expandvars(sys.argv[2]).encode()
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(("CONNECT tcp.example.test:%s HTTP/1.1\r\nHost: tcp.example.test:%s\r\n\r\n" % (port, port)).encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += s.recv(1)
out = b""
try:
    if data:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    while True:
        c = s.recv(65536)
        if not c:
            break
        out += c
except OSError:
    print("closed", end="")
print(out.decode(), end="")
`;
  const tunnel = async (port: number, send: string) => {
    await sb.fs.writeTextFile("/tmp/tunnel.py", TUNNEL_PY);
    return run(`python3 /tmp/tunnel.py ${port} '${send}'`);
  };

  it("a host that cannot be reached is a 502 naming it, as in a sandbox without secrets", async () => {
    const r = await run(`curl -s -p -o /dev/null -w '%{http_connect}' http://tcp.example.test:2999/`);
    expect(r.out).toBe("502");
    const refused = await raw([{ parts: ["CONNECT tcp.example.test:2999 HTTP/1.1\r\nHost: tcp.example.test:2999\r\n\r\n"] }]);
    expect(refused[0]!.headers["x-sbx-error"]).toMatch(/^cannot reach tcp\.example\.test:2999: connect ECONNREFUSED/);
  });

  it("a server that speaks first is heard without the client sending anything", async () => {
    expect(ok(await tunnel(2525, ""), "banner")).toBe("220 tcp.example.test ready\r\n");
  });

  it("a non-HTTP protocol passes as it is, and a placeholder in it ends the tunnel before it leaves", async () => {
    recorded.length = 0;
    expect(ok(await tunnel(2222, "SSH-2.0-test\r\nplain bytes\n"), "clean")).toBe("bye\n");
    expect(Buffer.concat(recorded).toString()).toBe("SSH-2.0-test\r\nplain bytes\n");
    recorded.length = 0;
    // An upper-case verb and a space is not HTTP yet: SMTP's EHLO passes as it is.
    expect(ok(await tunnel(2222, "EHLO client.example\r\n"), "smtp-like")).toBe("bye\n");
    expect(Buffer.concat(recorded).toString()).toBe("EHLO client.example\r\n");
    recorded.length = 0;
    const before = (await sb.usage()).egress.blocked;
    const closedBefore = recorderClosed;
    const r = ok(await tunnel(2222, "SSH-2.0-test\r\nkey $OPENAI_KEY\n"), "guarded");
    expect(r === "" || r === "closed").toBe(true);
    // Everything the recorder will ever get has arrived once its side of the tunnel is closed.
    await expect.poll(() => recorderClosed, { timeout: 5000, interval: 10 }).toBe(closedBefore + 1);
    const got = Buffer.concat(recorded).toString();
    expect(got).not.toContain(P.OPENAI_KEY);
    expect(got).not.toContain(OPENAI);
    expect((await sb.usage()).egress.blocked).toBe(before + 1);
    const last = (await sb.egressLog()).at(-1)!;
    expect(last).toMatchObject({ host: "tcp.example.test", port: 2222, method: "CONNECT", allowed: false, secret: "OPENAI_KEY" });
    refusalsSeen++;
  });
});

describe("requests on an intercepted tunnel go only to its own host", () => {
  it("another Host, no Host, an absolute target for another host, or a CONNECT inside: 400, and nothing reaches an upstream", async () => {
    const [otherHost, noHost, absolute, connect] = await raw([
      { tls: "api.openai.com", parts: [`GET /echo/vhost-other HTTP/1.1\r\nHost: other.example.test\r\nAuthorization: Bearer ${P.OPENAI_KEY}\r\nConnection: close\r\n\r\n`] },
      { tls: "api.openai.com", parts: [`GET /echo/vhost-none HTTP/1.0\r\nAuthorization: Bearer ${P.OPENAI_KEY}\r\n\r\n`] },
      tlsRequest("api.openai.com", "GET", "https://other.example.test/echo/vhost-absolute", [`Authorization: Bearer ${P.OPENAI_KEY}`]),
      tlsRequest("api.openai.com", "CONNECT", "other.example.test:443"),
    ]);
    for (const r of [otherHost, noHost, absolute, connect]) expect(r!.status, r!.raw).toBe(400);
    expect(otherHost!.headers["x-sbx-error"]).toMatch(/Host header .* disagrees with the tunnel to api\.openai\.com:443/);
    expect(absolute!.headers["x-sbx-error"]).toMatch(/is not for the tunnel to api\.openai\.com:443/);
    expect(connect!.headers["x-sbx-error"]).toBe("CONNECT inside an intercepted tunnel is not allowed");
    expect(up.seen.filter((r) => r.path.startsWith("/echo/vhost-"))).toEqual([]);
  });

  it("a TLS server name that disagrees with the CONNECT to a secret's host ends the handshake, and is logged", async () => {
    const r = await run(`curl -sS --connect-to other.example.test:443:api.openai.com:443 -H "Authorization: Bearer $OPENAI_KEY" https://other.example.test/echo/sni-mismatch`);
    expect(r.code).not.toBe(0);
    expect(seenAt("/echo/sni-mismatch")).toEqual([]);
    const last = (await sb.egressLog()).at(-1)!;
    expect(last).toMatchObject({ host: "api.openai.com", port: 443, method: "TLS", allowed: false });
    expect(last.reason).toContain("the TLS server name 'other.example.test' disagrees with the CONNECT target api.openai.com:443");
  });
});

describe("compressed request bodies the proxy cannot read to the end", () => {
  it("a coding it does not know (415), too many codings (415), one that does not decode (400), a bomb past 64 MiB decoded (413), over 16 MiB (413): never forwarded", async () => {
    const post = (path: string, coding: string, body: Buffer) => tlsRequest("api.openai.com", "POST", path, [`Content-Encoding: ${coding}`], body);
    // Resilience item 1: hundreds of stacked layers (each a stored gzip, the innermost compressed) once froze the daemon.
    let stacked = gzipSync(Buffer.alloc(1 << 20));
    for (let i = 0; i < 600; i++) stacked = gzipSync(stacked, { level: 0 });
    const [unknown, many, corrupt, bomb, big] = await raw([
      post("/echo/cbody-zstd", "zstd", Buffer.from("whatever")),
      post("/echo/cbody-stacked", Array(601).fill("gzip").join(", "), stacked),
      post("/echo/cbody-corrupt", "gzip", Buffer.from("not gzip at all")),
      post("/echo/cbody-bomb", "gzip", gzipSync(Buffer.alloc(80 << 20))),
      // Valid gzip of incompressible bytes, so the decoder keeps going until the 16 MiB it may hold are full.
      post("/echo/cbody-big", "gzip", gzipSync(randomBytes(17 << 20), { level: 1 })),
    ]);
    expect(unknown!.status, unknown!.raw).toBe(415);
    expect(unknown!.headers["x-sbx-error"]).toBe("a request body in content-encoding 'zstd' cannot be inspected for secrets, so it is refused");
    expect(many!.status, many!.raw).toBe(415);
    expect(many!.headers["x-sbx-error"]).toBe("a request body to api.openai.com:443 has 601 content codings; the proxy reads at most 4 to look for secrets");
    expect(corrupt!.status).toBe(400);
    expect(corrupt!.headers["x-sbx-error"]).toMatch(/^a request body in content-encoding 'gzip' to api\.openai\.com:443 cannot be decoded to look for secrets/);
    expect(bomb!.status).toBe(413);
    expect(bomb!.headers["x-sbx-error"]).toBe("a compressed request body to api.openai.com:443 decodes to over 64 MiB; the proxy refuses it rather than look through all of it");
    expect(big!.status).toBe(413);
    expect(big!.headers["x-sbx-error"]).toBe("a compressed request body to api.openai.com:443 is over 16 MiB; the proxy reads such bodies whole to look for secrets");
    expect(up.seen.filter((r) => r.path.startsWith("/echo/cbody-"))).toEqual([]);
  });
});

describe("responses the proxy cannot scrub", () => {
  it("a content coding it cannot read is refused with 502 rather than passed on unscrubbed", async () => {
    up.canned.set("/canned/zstd", { body: Buffer.from(OPENAI), headers: { "Content-Encoding": "zstd" } });
    const r = await run(`curl -sS -i https://api.openai.com/canned/zstd; echo; curl -sS -i http://api.example.test/canned/zstd`);
    expect(r.out.match(/^HTTP\/1\.1 502 /gm)).toHaveLength(2);
    expect(r.out).toContain("X-Sbx-Error: the response from api.openai.com:443 is in content-encoding 'zstd', which the proxy cannot read to scrub secrets from");
    expectNoValue(r.out, "the 502s");
  });

  it("a response with more than 4 content codings is refused with 502 naming the count", async () => {
    let body = Buffer.from("x");
    for (let i = 0; i < 5; i++) body = gzipSync(body);
    up.canned.set("/canned/five", { body, headers: { "Content-Encoding": "gzip, gzip, gzip, gzip, gzip" } });
    const r = await run(`curl -sS -i http://api.example.test/canned/five`);
    expect(r.out).toMatch(/^HTTP\/1\.1 502 /);
    expect(r.out).toContain("X-Sbx-Error: the response from api.example.test:80 has 5 content codings; the proxy unwraps at most 4 to scrub secrets from it");
  });

  it("a corrupt body in a chain of codings cuts that response only; the daemon and the sandbox carry on", async () => {
    up.canned.set("/canned/corrupt", { body: Buffer.from("not gzip at all"), headers: { "Content-Encoding": "gzip, gzip" } });
    const r = await run(`curl -sS -o /dev/null http://api.example.test/canned/corrupt`);
    expect(r.code).not.toBe(0);
    expect(ok(await run("curl -sS --fail -o /dev/null -w '%{http_code}' http://api.example.test/echo/after-corrupt"), "curl")).toBe("200");
  });

  it("a refusal of a pipelined request is answered in turn, after the response before it", async () => {
    const head = (path: string, extra = "") => `GET http://api.example.test${path} HTTP/1.1\r\nHost: api.example.test\r\n${extra}\r\n`;
    const [r] = await raw([{ parts: [head("/echo/pipelined-first") + head("/echo/pipelined-second", `X-Key: ${P.OPENAI_KEY}\r\n`)] }]);
    expect(r!.status).toBe(200);
    const second = r!.raw.slice(r!.raw.indexOf("HTTP/1.1", 10));
    expect(second).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(second).toContain("X-Sbx-Error: secret OPENAI_KEY was sent over plain HTTP to api.example.test:80");
    expect(seenAt("/echo/pipelined-second")).toEqual([]);
    refusalsSeen++;
  });
});

describe("a second Host header", () => {
  it("never reaches the upstream beside a substituted secret (intercepted), nor on plain HTTP: only the checked one goes", async () => {
    const [tls, plain] = await raw([
      tlsRequest("api.openai.com", "GET", "/echo/two-hosts", ["Host: other.example.test", `Authorization: Bearer ${P.OPENAI_KEY}`]),
      { parts: ["GET http://api.example.test/echo/two-hosts-plain HTTP/1.1\r\nHost: api.example.test\r\nHost: other.example.test\r\nConnection: close\r\n\r\n"] },
    ]);
    expect(tls!.status, tls!.raw).toBe(200);
    expect(plain!.status, plain!.raw).toBe(200);
    const hosts = (r: SeenRequest) => r.rawHeaders.flatMap((name, i) => (i % 2 === 0 && name.toLowerCase() === "host" ? [r.rawHeaders[i + 1]!] : []));
    const [seenTls] = seenAt("/echo/two-hosts");
    expect(hosts(seenTls!)).toEqual(["api.openai.com"]);
    expect(seenTls!.headers.authorization).toBe(`Bearer ${OPENAI}`);
    expect(hosts(seenAt("/echo/two-hosts-plain")[0]!)).toEqual(["api.example.test"]);
  });
});

describe("the upstream of a secret's host is verified before anything is sent", () => {
  it("a certificate from an untrusted CA, or one that does not name the host: 502 naming the problem, and no request reaches it", async () => {
    const out = ok(
      await run(
        [
          `curl -sS -D - -o /dev/null -H "Authorization: Bearer $IMPOSTOR_KEY" https://api.impostor.test/steal`,
          `curl -sS -D - -o /dev/null -H "Authorization: Bearer $UNLISTED_KEY" https://unlisted.example.test/echo/unlisted`,
        ].join("; "),
      ),
      "curl",
    );
    const errors = out.split("\n").filter((l) => l.toLowerCase().startsWith("x-sbx-error:"));
    expect(out.match(/^HTTP\/1\.1 502 /gm)).toHaveLength(2);
    expect(errors[0]).toMatch(/cannot reach api\.impostor\.test:443: self[- ]signed certificate/i);
    expect(errors[1]).toMatch(/cannot reach unlisted\.example\.test:443: .*Host: unlisted\.example\.test\. is not in the cert's altnames/);
    expect(impostorRequests).toBe(0);
    expect(seenAt("/echo/unlisted")).toEqual([]);
    expectNoValue(out, "the 502s");
  });
});

describe("allowNet", () => {
  it("a secret's hosts stay reachable when setAllowNet leaves them out", async () => {
    await sb.setAllowNet(["other.example.test"]);
    try {
      const out = ok(
        await run(
          `curl -sS -o /dev/null -w '%{http_code}\\n' -H "Authorization: Bearer $OPENAI_KEY" https://api.openai.com/echo/after-set-allow-net; curl -sS -o /dev/null -w '%{http_code}\\n' http://api.example.test/echo/dropped-host`,
        ),
        "curl",
      );
      expect(out).toBe("200\n403\n");
    } finally {
      await sb.setAllowNet(ALLOW);
    }
    expect(seenAt("/echo/after-set-allow-net")[0]!.headers.authorization).toBe(`Bearer ${OPENAI}`);
    expect(seenAt("/echo/dropped-host")).toEqual([]);
  });
});

describe("counting and logging", () => {
  it("every refusal is counted in usage().egress.blocked, logged with the secret's name (never its value), and warned in the daemon's log", async () => {
    const usage = await sb.usage();
    const log = await sb.egressLog();
    expect(usage.egress.blocked).toBe(log.filter((e) => !e.allowed).length);
    const bySecret = log.filter((e) => e.secret !== undefined);
    expect(bySecret.length).toBe(refusalsSeen);
    expect(usage.egress.blocked).toBeGreaterThanOrEqual(refusalsSeen);
    expect(bySecret.every((e) => !e.allowed && e.reason!.includes(`secret ${e.secret} `))).toBe(true);
    expect(new Set(bySecret.map((e) => e.secret))).toEqual(new Set(["OPENAI_KEY", "ANTHROPIC_KEY"]));
    expect(bySecret.find((e) => e.host === "api.example.test" && e.port === 80 && e.secret === "OPENAI_KEY")).toBeDefined();
    expect(bySecret.find((e) => e.host === "api.anthropic.com" && e.port === 443 && e.secret === "OPENAI_KEY")).toBeDefined();
    expectNoValue(JSON.stringify(log), "the egress log");
    for (const p of Object.values(P)) expect(JSON.stringify(log)).not.toContain(p);

    const warned = daemon.logs().split("\n").filter((l) => / warn sandbox \S+: egress refused a request carrying secret /.test(l));
    expect(warned.length).toBe(refusalsSeen);
    expect(warned.some((l) => l.includes("carrying secret OPENAI_KEY: secret OPENAI_KEY is in the URL of a request to api.openai.com:443"))).toBe(true);
    expect(warned.some((l) => l.includes("carrying secret ANTHROPIC_KEY: "))).toBe(true);
    expectNoValue(daemonOutput(), "the daemon's output");
  });
});

describe("the value never reaches the sandbox", () => {
  it("no value in env, any /proc/*/environ or cmdline, or any file under /home/user, /tmp, /etc, /.sbx (after all the tools above ran)", async () => {
    // each value goes in as two halves, joined only inside grep's pattern pipe, so nothing inside ever holds it whole;
    // a canary (not a secret) goes in the same way and is then planted in one place of each kind, to show grep looks there
    const env: Record<string, string> = {};
    const halves = (name: string, v: string) => {
      env[`${name}A`] = v.slice(0, v.length >> 1);
      env[`${name}B`] = v.slice(v.length >> 1);
      return `"$${name}A" "$${name}B"`;
    };
    const pairs = SANDBOX_VALUES.map((v, i) => halves(`SV${i}`, v)).join(" ");
    const canary = halves("CAN", `canary-${rand(40)}`);
    const script = `
pats() { printf '%s%s\\n' ${pairs} ${canary}; }
canary() { printf '%s%s' ${canary}; }
canary > /tmp/canary-file
(exec -a "$(canary)" sleep 60) & argv_pid=$!
CANARY="$(canary)" sleep 60 & env_pid=$!
# both canaries in place before anything is scanned (the exec -a may not have happened yet)
for i in $(seq 250); do grep -qaF "$(canary)" /proc/$argv_pid/cmdline 2>/dev/null && grep -qaF "$(canary)" /proc/$env_pid/environ 2>/dev/null && break; sleep 0.02; done
exec 3< <(pats); wait $!
exec 4< <(pats); wait $!
exec 5< <(pats); wait $!
echo "== env"; CANARY_ENV="$(canary)" env | grep -c -F -f /dev/fd/3; echo "exit=\${PIPESTATUS[1]}"
# -s, and "exit" from what was found: a process that ends while grep runs (its /proc entry gone) is no finding
echo "== proc"; found=$(grep -s -l -a -F -f /dev/fd/4 /proc/[0-9]*/environ /proc/[0-9]*/cmdline); [ -n "$found" ] && echo "$found"; [ -n "$found" ]; echo "exit=$?"
echo "== files"; grep -r -l -a -F -D skip -f /dev/fd/5 /home/user /tmp /etc /.sbx; echo "exit=$?"
echo "== seen"; ls /proc | grep -c '^[0-9]'; find /home/user /tmp /etc /.sbx -type f 2>/dev/null | wc -l
echo "== canaries"; echo "$argv_pid $env_pid"
kill $argv_pid $env_pid; rm /tmp/canary-file
`;
    const r = await run(script, env);
    const parts: Record<string, string> = {};
    for (const section of r.out.split(/^== /m).slice(1)) parts[section.slice(0, section.indexOf("\n"))] = section.slice(section.indexOf("\n") + 1);
    const [argvPid, envPid] = parts.canaries!.trim().split(" ");
    // the environment: the canary's variable only
    expect(parts.env).toBe("1\nexit=0\n");
    // every process: the canary's two places only
    expect(parts.proc!.split("\n").filter(Boolean).sort()).toEqual([`/proc/${argvPid}/cmdline`, `/proc/${envPid}/environ`, "exit=0"].sort());
    // every file: the canary's only; what the sandbox user cannot read at all (on Debian: /etc/ssl/private) is all grep may skip
    const unreadable = r.err.split("\n").filter(Boolean);
    expect(unreadable.every((l) => /^grep: \S+: Permission denied$/.test(l)), r.err).toBe(true);
    expect(parts.files).toBe(`/tmp/canary-file\nexit=${unreadable.length ? 2 : 0}\n`);
    // grep looked at something: several processes, and the files the tools left (the clone, pip's target, deno's)
    const [procs, files] = parts.seen!.trim().split("\n").map(Number);
    expect(procs).toBeGreaterThanOrEqual(5);
    expect(files).toBeGreaterThan(100);
  });

  it("the daemon's CA key is 0600 (in a 0700 dir) in the state dir, and nowhere in the sandbox", async () => {
    const dir = join(daemon.stateDir, "ca");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "ca.key")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "ca.key")).uid).toBe(process.getuid!());
    const key = readFileSync(join(dir, "ca.key"), "utf8");
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    // the PEM line holding the private scalar (the first line is the same for every P-256 key)
    const line = key.split("\n")[2]!;
    expect(line.length).toBeGreaterThan(40);
    const r = await run(
      `printf '%s%s\\n' "$KA" "$KB" | grep -r -l -a -F -D skip -f - /home/user /tmp /etc /.sbx 2>/dev/null; echo "exit=$?"; ls -A /.sbx; test -e ${JSON.stringify(dir)} && echo "state dir visible"; true`,
      { KA: line.slice(0, 20), KB: line.slice(20) },
    );
    expect(r.out).toMatch(/^exit=[12]\n/);
    expect(r.out.split("\n").slice(1).filter(Boolean).sort()).toEqual(["ca-bundle.pem", "ca.pem", "java-cacerts.jks", "node", "node-proxy-impl.cjs", "node-proxy.cjs", "run", "supervisor"]);
  });
});

describe("create-time validation", () => {
  const cases: Array<[what: string, secrets: NonNullable<SandboxOptions["secrets"]>, env: Record<string, string> | undefined, names: RegExp]> = [
    ["a value under 8 characters", { SHORT_KEY: { hosts: ["api.openai.com"], value: value(rand(7)) } }, undefined, /secrets\.SHORT_KEY: value must be at least 8 characters/],
    ["a value with CR LF (header injection)", { CRLF_KEY: { hosts: ["api.openai.com"], value: value(`${rand(16)}\r\nX-Injected: ${rand(16)}`) } }, undefined, /secrets\.CRLF_KEY: value must be printable ASCII/],
    ["a value with a NUL", { NUL_KEY: { hosts: ["api.openai.com"], value: value(`${rand(16)}\u0000${rand(16)}`) } }, undefined, /secrets\.NUL_KEY: value must be printable ASCII/],
    ["a non-ASCII value", { UTF_KEY: { hosts: ["api.openai.com"], value: value(`pässwörd-${rand(24)}`) } }, undefined, /secrets\.UTF_KEY: value must be printable ASCII/],
    ["a value with a quote, which JSON would escape out of scrubbing's sight", { QUOTE_KEY: { hosts: ["api.openai.com"], value: value(`q"uo-${rand(24)}`) } }, undefined, /secrets\.QUOTE_KEY: value must not contain "\\""/],
    ["a value with a space", { SPACE_KEY: { hosts: ["api.openai.com"], value: value(`two ${rand(24)}`) } }, undefined, /secrets\.SPACE_KEY: value must be printable ASCII without spaces/],
    ["a value that holds a placeholder prefix", { NESTED_KEY: { hosts: ["api.openai.com"], value: value(`SBX_SECRET_${rand(32)}`) } }, undefined, /secrets\.NESTED_KEY: value must not contain SBX_SECRET_/],
    ["an IPv4 literal host", { IP_KEY: { hosts: ["api.openai.com", "127.0.0.1"], value: value(`sk-${rand(40)}`) } }, undefined, /secrets\.IP_KEY: hosts entry "127\.0\.0\.1" is an IP address/],
    ["an IPv6 literal host", { IP6_KEY: { hosts: ["[2001:db8::1]:443"], value: value(`sk-${rand(40)}`) } }, undefined, /secrets\.IP6_KEY: hosts entry "\[2001:db8::1\]:443" is an IP address/],
    ["a host allowNet would refuse", { BAD_HOST_KEY: { hosts: ["*.com"], value: value(`sk-${rand(40)}`) } }, undefined, /secrets\.BAD_HOST_KEY: hosts entry "\*\.com"/],
    ["an env variable of the same name", { OPENAI_KEY: { hosts: ["api.openai.com"], value: value(`sk-${rand(40)}`) } }, { OPENAI_KEY: "mine" }, /env\.OPENAI_KEY: is also the name of a secret/],
    ["a value over 64 KiB", { HUGE_KEY: { hosts: ["api.openai.com"], value: value(rand(65537)) } }, undefined, /secrets\.HUGE_KEY\.value: /],
  ];

  it.each(cases)("%s: InvalidOptionError (InvalidParams) naming the secret, never its value", async (_what, secrets, env, names) => {
    const err = await Sandbox.create({ ...daemon.opts, allowNet: ALLOW, secrets, ...(env ? { env } : {}) }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidOptionError);
    const e = err as InvalidOptionError;
    expect(e.rpcCode).toBe(-32602);
    expect(e.message).toMatch(names);
    const told = `${e.message}\n${JSON.stringify(e.data ?? null)}\n${e.stack ?? ""}`;
    for (const { value: v } of Object.values(secrets)) {
      expect(told.includes(v)).toBe(false);
      // nor any 8-character random piece of it
      for (let i = 0; i + 8 <= Math.min(v.length, 200); i++) {
        const piece = v.slice(i, i + 8);
        if (/^[0-9A-Za-z]{8}$/.test(piece) && piece !== "Injected") expect(told.includes(piece), piece).toBe(false);
      }
    }
  });

  it("none of them started a sandbox", async () => {
    expect((await Sandbox.list(daemon.opts)).map((s) => s.id)).toEqual([sb.id]);
  });
});

describe("after everything: no value in the daemon's output or anywhere under its state dir", () => {
  it("the scanner finds a value straddling two reads (so the scans below mean something)", async () => {
    const needle = rand(40);
    const file = join(hostDir, "scanner-check");
    writeFileSync(file, Buffer.concat([Buffer.alloc((4 << 20) - 17, 0x78), Buffer.from(needle), Buffer.alloc(100, 0x78)]));
    expect((await valuesBelow(hostDir, [rand(40), needle])).hits).toEqual([`${file}: value #1`]);
    rmSync(file);
  });

  it("while the daemon runs (sandbox storage flushed: its mount and its disk image are read through)", async () => {
    spawnSync("sync");
    const { hits, files } = await leaks();
    finalScans++;
    expect(hits).toEqual([]);
    // it read the CA key, the sandbox's disk image, and the sandbox's own files through its mount
    const stateDir = daemon.stateDir;
    expect(files).toContain(join(stateDir, "ca", "ca.key"));
    expect(files).toContain(join(stateDir, "mnt", `${sb.id}.img`));
    expect(files).toContain(join(stateDir, "mnt", sb.id, "home", "requests_secrets.py"));
  }, 60_000);

  it("after the sandbox is killed and the daemon stopped", async () => {
    await sb.kill();
    await daemon.stop();
    const { hits, files } = await leaks();
    finalScans++;
    expect(hits).toEqual([]);
    expect(files).toContain(join(daemon.stateDir, "ca", "ca.key"));
    expect(daemonOutput()).toMatch(/egress refused a request carrying secret OPENAI_KEY/);
  }, 60_000);
});
