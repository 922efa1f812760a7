import { existsSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useSandbox } from "../../helpers/fixtures.js";
import { ok, runBash } from "../../helpers/bash.js";
import { startUpstreams, type SeenRequest, type Upstreams } from "../../helpers/upstreams.js";

/**
 * Real clients reach allowed hosts through the sandbox's egress proxy with no per-tool setup
 * (issue 4, Wiring): only the proxy variables and the Node preload the daemon sets. Each one
 * talks to local upstream servers (plain HTTP and HTTPS with a throwaway CA) by real-looking
 * names that the daemon's `egress.resolve` pins to loopback. The only per-test setting is
 * trust in the test CA, which a real registry would not need.
 */

let up: Upstreams;

const CA = "/home/user/ca.pem";
const ALLOW = ["api.example.test", "pypi.example.test", "files.pythonhosted.test", "registry.example.test", "git.example.test"];

beforeAll(async () => {
  up = await startUpstreams();
});
// registered before the daemon's hooks, so it runs after the daemon stopped
afterAll(() => up?.close());
const { sb } = useSandbox({
  daemon: () => ({ config: { egress: { resolve: up.resolve } } }),
  sandbox: { allowNet: ALLOW },
  setup: (sb) => sb.fs.writeTextFile(CA, up.caPem),
});

const run = (script: string, env?: Record<string, string>) => runBash(sb, script, { env });

/** The requests the upstreams saw for `path` (exactly), oldest first. */
const seenAt = (path: string): SeenRequest[] => up.seen.filter((s) => s.path === path);

/** Runs `fn` and returns the egress decisions made meanwhile. */
async function decisions(fn: () => Promise<unknown>) {
  const before = (await sb.egressLog()).length;
  await fn();
  return (await sb.egressLog()).slice(before).map((e) => `${e.allowed ? "allowed" : "blocked"} ${e.method} ${e.host}:${e.port}`);
}

describe("the environment", () => {
  it("sets the proxy variables in both cases, NO_PROXY for loopback, and the Node preload", async () => {
    const out = ok(await run("env | grep -iE '^(https?|all|no)_proxy=|^NODE_OPTIONS=' | LC_ALL=C sort"), "env");
    expect(out).toBe(
      [
        "ALL_PROXY=http://127.0.0.1:3128",
        "HTTPS_PROXY=http://127.0.0.1:3128",
        "HTTP_PROXY=http://127.0.0.1:3128",
        "NODE_OPTIONS=--require /.sbx/node-proxy.cjs",
        "NO_PROXY=localhost,127.0.0.1,::1",
        "all_proxy=http://127.0.0.1:3128",
        "http_proxy=http://127.0.0.1:3128",
        "https_proxy=http://127.0.0.1:3128",
        "no_proxy=localhost,127.0.0.1,::1",
        "",
      ].join("\n"),
    );
  });
});

describe("curl", () => {
  it("reaches an allowed host over plain HTTP (absolute-URI) and HTTPS (CONNECT)", async () => {
    const log = await decisions(async () => {
      const out = ok(await run(`curl -sS --fail http://api.example.test/echo/curl-http && echo && curl -sS --fail --cacert ${CA} https://api.example.test/echo/curl-https`), "curl");
      const [plain, tls] = out.trim().split("\n").map((l) => JSON.parse(l));
      expect(plain).toMatchObject({ method: "GET", path: "/echo/curl-http", tls: false, headers: { host: "api.example.test" } });
      expect(plain.headers["user-agent"]).toMatch(/^curl\//);
      expect(tls).toMatchObject({ method: "GET", path: "/echo/curl-https", tls: true, servername: "api.example.test", headers: { host: "api.example.test" } });
    });
    expect(log).toEqual(["allowed GET api.example.test:80", "allowed CONNECT api.example.test:443"]);
  });

  it("sends a POST body through unchanged", async () => {
    const body = JSON.stringify({ hello: "world", n: [1, 2, 3] });
    const out = ok(await run(`curl -sS --fail -H 'Content-Type: application/json' --data-binary '${body}' http://api.example.test/echo/curl-post`), "curl");
    expect(JSON.parse(out)).toMatchObject({ method: "POST", path: "/echo/curl-post", body, headers: { "content-type": "application/json", "content-length": String(body.length) } });
  });
});

describe("wget", () => {
  it("reaches an allowed host over HTTP and HTTPS", async () => {
    const present = await run("command -v wget");
    if (present.code !== 0) throw new Error("wget is not installed on this host (the sandbox sees the host's /usr): CI must `apt-get install wget`");
    const log = await decisions(async () => {
      const out = ok(await run(`wget -q -O- http://api.example.test/echo/wget-http && echo && wget -q -O- --ca-certificate=${CA} https://api.example.test/echo/wget-https`), "wget");
      const [plain, tls] = out.trim().split("\n").map((l) => JSON.parse(l));
      expect(plain).toMatchObject({ method: "GET", path: "/echo/wget-http", tls: false });
      expect(plain.headers["user-agent"]).toMatch(/^Wget\//);
      expect(tls).toMatchObject({ method: "GET", path: "/echo/wget-https", tls: true, servername: "api.example.test" });
    });
    expect(log).toEqual(["allowed GET api.example.test:80", "allowed CONNECT api.example.test:443"]);
  });
});

describe("Python", () => {
  it("urllib reaches an allowed host over HTTP and HTTPS", async () => {
    const script = [
      "import json, ssl, urllib.request",
      "print(urllib.request.urlopen('http://api.example.test/echo/urllib-http', timeout=10).read().decode())",
      `ctx = ssl.create_default_context(cafile=${JSON.stringify(CA)})`,
      "print(urllib.request.urlopen('https://api.example.test/echo/urllib-https', context=ctx, timeout=10).read().decode())",
      "req = urllib.request.Request('https://api.example.test/echo/urllib-post', data=b'posted', method='PUT')",
      "print(urllib.request.urlopen(req, context=ctx, timeout=10).read().decode())",
    ].join("\n");
    await sb.fs.writeTextFile("urllib_test.py", script);
    const out = ok(await run("python3 urllib_test.py"), "python3 urllib");
    const [plain, tls, put] = out.trim().split("\n").map((l) => JSON.parse(l));
    expect(plain).toMatchObject({ method: "GET", path: "/echo/urllib-http", tls: false });
    expect(plain.headers["user-agent"]).toMatch(/^Python-urllib\//);
    expect(tls).toMatchObject({ method: "GET", path: "/echo/urllib-https", tls: true, servername: "api.example.test" });
    expect(put).toMatchObject({ method: "PUT", path: "/echo/urllib-post", body: "posted" });
  });

  it("requests reaches an allowed host over HTTP and HTTPS", async () => {
    const probe = await run("python3 -c 'import requests; print(requests.__version__)'");
    if (probe.code !== 0) {
      throw new Error(`python3 in the sandbox (the host's /usr/bin/python3) cannot import requests: CI must \`apt-get install python3-requests\`\n${probe.err}`);
    }
    const script = [
      "import requests",
      "print(requests.get('http://api.example.test/echo/requests-http', timeout=10).text)",
      // Per request: requests lets REQUESTS_CA_BUNDLE (set in every sandbox) win over a Session's verify.
      `r = requests.post('https://api.example.test/echo/requests-https', json={'a': 1}, timeout=10, verify=${JSON.stringify(CA)})`,
      "print(r.status_code, r.text)",
    ].join("\n");
    await sb.fs.writeTextFile("requests_test.py", script);
    const out = ok(await run("python3 requests_test.py"), "python3 requests");
    const lines = out.trim().split("\n");
    const plain = JSON.parse(lines[0]!);
    expect(plain).toMatchObject({ method: "GET", path: "/echo/requests-http", tls: false });
    expect(plain.headers["user-agent"]).toMatch(/^python-requests\//);
    expect(lines[1]!.startsWith("200 ")).toBe(true);
    expect(JSON.parse(lines[1]!.slice(4))).toMatchObject({ method: "POST", path: "/echo/requests-https", tls: true, servername: "api.example.test", body: '{"a": 1}' });
  });

  it("pip downloads a wheel from a PEP 503 index over HTTP and HTTPS, with the file on another host", async () => {
    const log = await decisions(async () => {
      const pip = (index: string, dest: string, extra: string) =>
        `python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check --progress-bar off -d ${dest} --index-url ${index} ${extra} sbxdemo`;
      const r = await run(
        [
          pip("http://pypi.example.test/simple/", "/tmp/wheels-http", "--trusted-host pypi.example.test --trusted-host files.pythonhosted.test"),
          // pip's --cert loses to REQUESTS_CA_BUNDLE (requests' precedence), so the test CA is named there for this run.
          `REQUESTS_CA_BUNDLE=${CA} ${pip("https://pypi.example.test/simple/", "/tmp/wheels-https", `--cert ${CA}`)}`,
          `sha256sum /tmp/wheels-http/* /tmp/wheels-https/*`,
        ].join(" && "),
      );
      const out = ok(r, "pip download");
      expect(out).toContain("Saved /tmp/wheels-http/sbxdemo-1.0-py3-none-any.whl\n");
      expect(out.trimEnd().split("\n").slice(-2).join("\n") + "\n").toBe(`${up.wheel.sha256}  /tmp/wheels-http/${up.wheel.name}\n${up.wheel.sha256}  /tmp/wheels-https/${up.wheel.name}\n`);
    });
    expect(log).toEqual([
      "allowed GET pypi.example.test:80",
      "allowed GET files.pythonhosted.test:80",
      "allowed CONNECT pypi.example.test:443",
      "allowed CONNECT files.pythonhosted.test:443",
    ]);
    expect(seenAt("/simple/sbxdemo/").map((s) => [s.tls, s.headers["user-agent"]?.toString().startsWith("pip/")])).toEqual([
      [false, true],
      [true, true],
    ]);
  });
});

describe("Node", () => {
  it("global fetch reaches an allowed host over HTTP and HTTPS (through the preload)", async () => {
    const script = `
const a = await (await fetch("http://api.example.test/echo/fetch-http")).json();
const b = await (await fetch("https://api.example.test/echo/fetch-https", { method: "POST", body: "from fetch" })).json();
const c = await fetch("http://other.example.test/echo/fetch-blocked").then((r) => "status " + r.status, (e) => e.message + ": " + e.cause?.cause?.message);
console.log(JSON.stringify([a, b, c]));
`;
    await sb.fs.writeTextFile("fetch_test.mjs", script);
    const log = await decisions(async () => {
      const out = ok(await run("node fetch_test.mjs", { NODE_EXTRA_CA_CERTS: CA }), "node fetch");
      const [a, b, c] = JSON.parse(out);
      expect(a).toMatchObject({ method: "GET", path: "/echo/fetch-http", tls: false });
      expect(b).toMatchObject({ method: "POST", path: "/echo/fetch-https", tls: true, servername: "api.example.test", body: "from fetch" });
      // undici's proxy agent tunnels http:// too, so a refusal surfaces as a failed CONNECT, not a readable 403 response
      expect(c).toBe("fetch failed: Proxy response (403) !== 200 when HTTP Tunneling");
    });
    expect(log).toEqual(["allowed CONNECT api.example.test:80", "allowed CONNECT api.example.test:443", "blocked CONNECT other.example.test:80"]);
  });

  it("a NODE_OPTIONS of the caller's own (spawn env, sh.env, env.set) keeps the preload in front, so fetch still goes out", async () => {
    const script = `console.log(process.execArgv.join(" ") || "-", (await (await fetch("http://api.example.test/echo/own-node-options")).json()).path);`;
    await sb.fs.writeTextFile("own_options.mjs", script);
    const viaSpawn = await (await sb.spawn("node", { args: ["own_options.mjs"], env: { NODE_OPTIONS: "--max-old-space-size=200" } })).output();
    expect(viaSpawn.stdoutText).toBe("- /echo/own-node-options\n");
    expect(ok(await run("echo $NODE_OPTIONS", { NODE_OPTIONS: "--no-warnings" }), "env")).toBe("--require /.sbx/node-proxy.cjs --no-warnings\n");
    expect(await sb.sh`node own_options.mjs`.env("NODE_OPTIONS", "--no-deprecation").text()).toBe("- /echo/own-node-options\n");
    await sb.env.set("NODE_OPTIONS", "--enable-source-maps");
    try {
      expect(ok(await run("echo $NODE_OPTIONS"), "env")).toBe("--require /.sbx/node-proxy.cjs --enable-source-maps\n");
      expect(ok(await run("node own_options.mjs"), "node")).toBe("- /echo/own-node-options\n");
    } finally {
      await sb.env.delete("NODE_OPTIONS");
    }
  });

  it("the http and https modules reach an allowed host (through the preload)", async () => {
    const script = `
const http = require("node:http");
const https = require("node:https");
function get(mod, url) {
  return new Promise((resolve, reject) => {
    mod.get(url, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    }).on("error", reject);
  });
}
(async () => {
  const a = await get(http, "http://api.example.test/echo/node-http");
  const b = await get(https, "https://api.example.test/echo/node-https");
  console.log(JSON.stringify([a.status, JSON.parse(a.body), b.status, JSON.parse(b.body)]));
})().catch((e) => { console.error(e); process.exit(1); });
`;
    await sb.fs.writeTextFile("modules_test.cjs", script);
    const log = await decisions(async () => {
      const out = ok(await run("node modules_test.cjs", { NODE_EXTRA_CA_CERTS: CA }), "node http/https");
      const [sa, a, sb2, b] = JSON.parse(out);
      expect([sa, sb2]).toEqual([200, 200]);
      expect(a).toMatchObject({ method: "GET", path: "/echo/node-http", tls: false, headers: { host: "api.example.test" } });
      expect(b).toMatchObject({ method: "GET", path: "/echo/node-https", tls: true, servername: "api.example.test", headers: { host: "api.example.test" } });
    });
    expect(log).toEqual(["allowed GET api.example.test:80", "allowed CONNECT api.example.test:443"]);
  });

  it("npm view and npm pack fetch from a registry over HTTP and HTTPS", async () => {
    const npm = "npm --no-update-notifier --no-audit --no-fund --loglevel=error";
    const log = await decisions(async () => {
      const out = ok(
        await run(
          [
            `${npm} view sbx-demo --json --registry http://registry.example.test/`,
            `mkdir -p /tmp/packed && cd /tmp/packed && ${npm} pack sbx-demo --registry https://registry.example.test/ --cafile ${CA} && sha1sum /tmp/packed/*.tgz`,
          ].join(" && "),
        ),
        "npm",
      );
      const json = out.slice(0, out.lastIndexOf("}") + 1);
      const view = JSON.parse(json);
      expect(view).toMatchObject({ name: "sbx-demo", version: "1.2.3", description: "sbx egress test package", dist: { shasum: up.npm.shasum, integrity: up.npm.integrity } });
      expect(out.slice(json.length)).toBe(`\nsbx-demo-1.2.3.tgz\n${up.npm.shasum}  /tmp/packed/sbx-demo-1.2.3.tgz\n`);
    });
    expect(log).toEqual(["allowed GET registry.example.test:80", "allowed CONNECT registry.example.test:443", ...(log.length === 3 ? ["allowed CONNECT registry.example.test:443"] : [])]);
    expect(seenAt("/sbx-demo/-/sbx-demo-1.2.3.tgz").map((s) => s.tls)).toEqual([true]);
    expect(seenAt("/sbx-demo")[0]!.headers["user-agent"]).toMatch(/^npm\//);
  });
});

describe("git", () => {
  it("clones over smart HTTPS and HTTP (git http-backend)", async () => {
    const log = await decisions(async () => {
      const out = ok(
        await run(
          [
            `git clone -q https://git.example.test/repo.git /tmp/clone-https`,
            `git clone -q http://git.example.test/repo.git /tmp/clone-http`,
            `git -C /tmp/clone-https rev-parse HEAD`,
            `git -C /tmp/clone-http rev-parse HEAD`,
            `cat /tmp/clone-https/${up.git.file}`,
          ].join(" && "),
          { GIT_SSL_CAINFO: CA, GIT_TERMINAL_PROMPT: "0" },
        ),
        "git clone",
      );
      expect(out).toBe(`${up.git.head}\n${up.git.head}\n${up.git.content}`);
    });
    expect(new Set(log)).toEqual(new Set(["allowed CONNECT git.example.test:443", "allowed GET git.example.test:80", "allowed POST git.example.test:80"]));
    // smart protocol v2 over both schemes: ls-refs and fetch, each a POST to git-upload-pack
    expect(up.seen.filter((s) => s.host === "git.example.test" && s.path === "/repo.git/git-upload-pack").map((s) => s.tls).sort()).toEqual([false, false, true, true]);
  });
});

describe("Deno", () => {
  const denoBin = (() => {
    const root = fileURLToPath(new URL("../../../../../", import.meta.url));
    const shim = join(root, "node_modules", ".bin", "deno");
    if (!existsSync(shim)) return null;
    const pkg = join(root, "node_modules", ".pnpm", "node_modules", "@deno", `${process.platform}-${process.arch === "x64" ? "x64" : "arm64"}-glibc`, "deno");
    return existsSync(pkg) ? realpathSync(pkg) : null;
  })();

  it("fetches from an allowed host over HTTP and HTTPS (HTTPS_PROXY)", async () => {
    if (denoBin === null) throw new Error("deno is missing: `pnpm install` brings it (the workspace's deno devDependency)");
    await sb.fs.upload(denoBin, "/tmp/deno");
    const script = `
const a = await (await fetch("http://api.example.test/echo/deno-http")).json();
const b = await (await fetch("https://api.example.test/echo/deno-https")).json();
const c = await fetch("https://other.example.test/echo/deno-blocked").then((r) => "status " + r.status, (e) => "error " + e.name);
console.log(JSON.stringify([a, b, c]));
`;
    await sb.fs.writeTextFile("deno_test.ts", script);
    const log = await decisions(async () => {
      const out = ok(await run(`/tmp/deno run -A --cert ${CA} deno_test.ts`, { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DENO_DIR: "/tmp/deno-dir" }), "deno");
      const [a, b, c] = JSON.parse(out);
      expect(a).toMatchObject({ method: "GET", path: "/echo/deno-http", tls: false });
      expect(a.headers["user-agent"]).toMatch(/^Deno\//);
      expect(b).toMatchObject({ method: "GET", path: "/echo/deno-https", tls: true, servername: "api.example.test" });
      expect(c).toMatch(/^error /);
    });
    expect(log).toEqual(["allowed GET api.example.test:80", "allowed CONNECT api.example.test:443", "blocked CONNECT other.example.test:443"]);
  }, 60_000);
});

describe("the same run, checked from the host", () => {
  it("every request above went through the proxy: the sandbox's counters match what the upstreams saw", async () => {
    const usage = await sb.usage();
    const log = await sb.egressLog();
    expect(usage.egress.requests).toBe(log.length);
    expect(usage.egress.blocked).toBe(log.filter((e) => !e.allowed).length);
    expect(usage.egress.bytesIn).toBeGreaterThan(up.wheel.bytes.length + up.npm.tarball.length);
    // every client asked for the test names only, and each of them is in the log
    expect([...new Set(log.map((e) => e.host))].sort()).toEqual([...ALLOW, "other.example.test"].sort());
    expect(log.filter((e) => !e.allowed).every((e) => e.host === "other.example.test")).toBe(true);
  });
});
