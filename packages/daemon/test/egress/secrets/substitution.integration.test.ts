import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ok } from "../../helpers/bash.js";
import { bodyOf, chunk } from "../../helpers/raw-http.js";
import { describeAccountingAndLeaks, OPENAI, ANTHROPIC, GIT, PYPI, SECRETS, PLACEHOLDER_RE, TEST_CA, ALLOW, expectNoValue, type SecretName, useSecretsSandbox } from "../../helpers/secrets.js";

/**
 * Secrets substituted: each tool inside (curl, Python requests, Node, git, pip, Deno) gets a
 * secret's value to its host and the placeholder back, through the daemon's CA that every tool
 * trusts with no setup; setAllowNet keeps a secret's hosts; and after all of it, no value is
 * anywhere inside.
 * The setting (upstreams, the daemon, a sandbox holding the secrets) is in helpers/secrets.ts.
 */

const s = useSecretsSandbox();
const { daemon, sb, up, P, run, seenAt, decisions, raw } = s;

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
    const root = fileURLToPath(new URL("../../../../../", import.meta.url));
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

describe("the daemon's CA key", () => {
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

// the tools above leave about 55 files over a fresh sandbox's 45
describeAccountingAndLeaks(s, { filesInside: 90 });
