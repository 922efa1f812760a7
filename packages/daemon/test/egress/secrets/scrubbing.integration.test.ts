import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { ok } from "../../helpers/bash.js";
import { parseResponse } from "../../helpers/raw-http.js";
import { describeAccountingAndLeaks, OPENAI, ANTHROPIC, GIT, PYPI, QUOTED, SECRETS, SANDBOX_VALUES, expectNoValue, type SecretName, useSecretsSandbox } from "../../helpers/secrets.js";

/**
 * Secrets scrubbed from responses: a value an upstream sends back (in headers, base64 forms,
 * chunked or compressed bodies, JSON and percent-encoded spellings) reaches the sandbox as its
 * placeholder, and a response the proxy cannot read to scrub it is refused.
 * The setting (upstreams, the daemon, a sandbox holding the secrets) is in helpers/secrets.ts.
 */

const s = useSecretsSandbox();
const { sb, up, P, counts, run, seenAt, raw } = s;

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
    // an upstream hex-dumping what it got (what an audit read a value back with before hex was scrubbed)
    const hex = Buffer.from(`u:${OPENAI}|`).toString("hex");
    up.canned.set("/canned/plain-hex", { body: `${hex} ${hex.toUpperCase()}` });
    const out = ok(
      await run(
        [
          "curl -sS --fail -D /tmp/leak-headers -o /tmp/leak-big http://api.example.test/canned/plain-big",
          "cat /tmp/leak-headers | tr -d '\\r' | grep -i '^x-leak'",
          "curl -sS --fail http://api.example.test/canned/plain-b64",
          "echo",
          "curl -sS --fail http://api.example.test/canned/plain-gzip",
          "echo",
          "curl -sS --fail http://api.example.test/canned/plain-hex",
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
    const [lower, upper] = lines[9]!.split(" ");
    expect(lower).toBe(`${Buffer.from("u:").toString("hex")}${P.OPENAI_KEY}${Buffer.from("|").toString("hex")}`);
    expect(upper).toBe(`${Buffer.from("u:").toString("hex").toUpperCase()}${P.OPENAI_KEY}${Buffer.from("|").toString("hex").toUpperCase()}`);
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

describe("responses the proxy cannot scrub", () => {
  it("a host a secret is bound to is asked for whole responses (Range dropped, a 206 refused): slices too short to scrub would carry the value", async () => {
    // The attack: an echo honouring Range, read 8 bytes at a time, each slice too short to recognise.
    const slices = await run(`for i in $(seq 0 8 600); do curl -sS -H "Authorization: Bearer $OPENAI_KEY" -H "Range: bytes=$i-$((i+7))" https://api.openai.com/echo-range/slices; done`);
    expectNoValue(slices.out, "the reassembled slices");
    const echoes = seenAt("/echo-range/slices");
    expect(echoes.length).toBeGreaterThan(10);
    expect(echoes.every((e) => e.headers.range === undefined && e.headers.authorization === `Bearer ${OPENAI}`)).toBe(true);
    // Each asked-for slice came back as the whole (scrubbed) echo instead.
    expect(slices.out).toContain(`"authorization":"Bearer ${P.OPENAI_KEY}"`);
    // A 206 the upstream sends anyway (If-Range dropped too) is refused, over TLS and plain HTTP to the same host.
    up.canned.set("/canned/partial", { status: 206, body: OPENAI.slice(0, 8), headers: { "Content-Range": `bytes 0-7/${OPENAI.length}` } });
    const partial = await run(`curl -sS -i -H "If-Range: x" -H "Range: bytes=0-7" https://api.openai.com/canned/partial`);
    expect(partial.out).toMatch(/^HTTP\/1\.1 502 /m);
    expect(partial.out).toContain("X-Sbx-Error: the response from api.openai.com:443 is partial content (206)");
    expect(partial.out).not.toContain(OPENAI.slice(0, 8));
    expect(seenAt("/canned/partial").every((e) => e.headers["if-range"] === undefined && e.headers.range === undefined)).toBe(true);
    // A host no secret is bound to keeps its ranges (over plain HTTP the proxy reads every request, and scrubs every response).
    const other = await run(`curl -sS -i -H "Range: bytes=0-9" http://api.example.test/echo-range/other`);
    expect(other.out).toMatch(/^HTTP\/1\.1 206 /m);
  });

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
    counts.refusalsSeen++;
  });
});

describeAccountingAndLeaks(s);
