import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DenoProcess, Sandbox } from "@sbx/client";
import { ErrorCodes } from "@sbx/protocol";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { RawClient } from "../helpers/raw.js";

let daemon: TestDaemon;
const TENANT2 = "a-second-tenant-token-of-16+-chars";
let sb: Sandbox;
let server: DenoProcess;
const quiet = { stdout: "null", stderr: "null" } as const;

// A server with a plain route, an echo of what it received, Server-Sent Events and a WebSocket.
const SERVER = `
Deno.serve({ port: 8000, hostname: "127.0.0.1", onListen() {} }, async (req) => {
  const url = new URL(req.url);
  if (url.pathname === "/echo") return Response.json({ method: req.method, path: url.pathname + url.search, headers: Object.fromEntries(req.headers), body: await req.text() });
  if (url.pathname === "/sse") {
    let i = 0;
    const body = new ReadableStream({ async pull(c) { await new Promise((r) => setTimeout(r, 150)); c.enqueue(new TextEncoder().encode("data: " + i + "\\n\\n")); if (++i === 3) c.close(); } });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  }
  if (url.pathname === "/ws") {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send("echo:" + e.data);
    return response;
  }
  if (url.pathname === "/big") return new Response(new Uint8Array(4 << 20).fill(120));
  return new Response("hello from " + url.pathname);
});`;

beforeAll(async () => {
  daemon = await startDaemon({ config: { tokens: [TENANT2] } });
  sb = await Sandbox.create(daemon.opts);
  server = await sb.deno.run({ code: SERVER, ...quiet });
});
afterAll(async () => {
  await sb?.kill();
  await daemon?.[Symbol.asyncDispose]();
});

/** A raw HTTP/1.1 exchange on one TCP connection: what the server wrote until it closed or `until` matched. */
function raw(url: string, text: string, until?: RegExp): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname, () => s.write(text));
    let got = "";
    s.on("data", (d) => {
      got += d;
      if (until?.test(got)) (s.destroy(), resolve(got));
    });
    s.on("end", () => resolve(got));
    s.on("error", reject);
  });
}

describe("deno.run and httpReady", () => {
  it("httpReady turns true once the program listens; fetch reaches it without exposing anything", async () => {
    expect(server).toBeInstanceOf(DenoProcess);
    expect(await server.httpReady).toBe(true);
    // The URL's scheme and host are not used for routing: the request goes to the program's port.
    expect(await (await server.fetch("https://ignored.example/anything")).text()).toBe("hello from /anything");
    expect(await (await server.fetch("http://ignored.example/path")).text()).toBe("hello from /path");
    const r = await sb.fetch("http://localhost:8000/echo?q=1", { method: "POST", body: "payload", headers: { "x-test": "yes" } });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ method: "POST", path: "/echo?q=1", body: "payload", headers: { "x-test": "yes" } });
    // A 4 MiB body streams through the relay's flow control whole.
    expect((await (await sb.fetch("http://127.0.0.1:8000/big")).arrayBuffer()).byteLength).toBe(4 << 20);
  });

  it("httpReady is false for a program that exits without listening; fetch to a closed port fails clearly", async () => {
    const p = await sb.deno.run({ code: "console.log('bye')", ...quiet });
    expect(await p.httpReady).toBe(false);
    await expect(sb.fetch("http://localhost:8999/")).rejects.toThrow(/nothing accepts connections on port 8999/);
    await expect(sb.fetch("http://example.com/")).rejects.toThrow(/not the sandbox's own loopback/);
  });

  it("run takes an entrypoint file, script arguments and env", async () => {
    await sb.fs.writeTextFile("main.ts", "const n: number = Number(Deno.args[0]); console.log(n * 2, Deno.env.get('WHO'));");
    const p = await sb.deno.run({ entrypoint: "main.ts", scriptArgs: ["21"], env: { WHO: "me" }, stdout: "piped", stderr: "piped" });
    const out = await p.output();
    expect([out.status.code, out.stdoutText]).toEqual([0, "42 me\n"]);
  });

  it("a server in a REPL: httpReady and fetch on the REPL itself", async () => {
    await using repl = await sb.deno.repl(quiet);
    await repl.eval(`Deno.serve({ port: 8100, onListen() {} }, () => new Response("from repl"))`);
    expect(await repl.httpReady).toBe(true);
    expect(await (await repl.fetch("http://x/")).text()).toBe("from repl");
  });
});

describe("exposeHttp", () => {
  it("serves the port at a token URL: plain, keep-alive, SSE streamed, WebSocket, and the token stays out of what the server sees", async () => {
    const url = await sb.exposeHttp({ port: 8000 });
    const u = new URL(url);
    expect(u.protocol).toBe("http:");
    expect(u.hostname).toBe("127.0.0.1");
    expect(u.port).not.toBe(new URL(daemon.url).port);
    const token = u.pathname.split("/")[1]!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(await (await fetch(`${url}hello`)).text()).toBe("hello from /hello");
    const echo = await (await fetch(`${url}echo?x=1`, { headers: { cookie: "app=1" } })).json();
    expect(echo.path).toBe("/echo?x=1");
    expect(JSON.stringify(echo)).not.toContain(token);
    expect(echo.headers.cookie).toBe("app=1");
    // Keep-alive: two requests on one client connection.
    const both = await raw(url, `GET /${token}/a HTTP/1.1\r\nHost: x\r\n\r\nGET /${token}/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(both).toMatch(/hello from \/a[\s\S]*hello from \/b/);
    // SSE: the first event arrives before the stream ends.
    const sse = await fetch(`${url}sse`);
    expect(sse.headers.get("content-type")).toBe("text/event-stream");
    const reader = sse.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    // The first event comes on its own, before the server has written the last one (150 ms apart).
    expect(first.startsWith("data: 0\n\n")).toBe(true);
    expect(first).not.toContain("data: 2");
    let rest = "";
    for (let c = await reader.read(); !c.done; c = await reader.read()) rest += new TextDecoder().decode(c.value);
    expect(first + rest).toBe("data: 0\n\ndata: 1\n\ndata: 2\n\n");
    // WebSocket upgrade through the exposure (Node 22's WebSocket, or a raw handshake).
    const ws = await raw(url, `GET /${token}/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`, /\r\n\r\n/);
    expect(ws).toMatch(/^HTTP\/1\.1 101 Switching Protocols/);
    expect(ws).toMatch(/sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
  });

  it("the token URL sets a cookie so a browser's absolute links work; X-Sbx-Token works too", async () => {
    const url = await sb.exposeHttp({ port: 8000 });
    const r = await fetch(`${url}page`);
    const cookie = r.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^sbx_expose_\d+=[A-Za-z0-9_-]{32}; Path=\/; HttpOnly; SameSite=Lax$/);
    const origin = new URL(url).origin;
    expect(await (await fetch(`${origin}/abs`, { headers: { cookie: cookie.split(";")[0]! } })).text()).toBe("hello from /abs");
    expect(await (await fetch(`${origin}/hdr`, { headers: { "x-sbx-token": new URL(url).pathname.split("/")[1]! } })).text()).toBe("hello from /hdr");
  });

  it("refuses a missing or wrong token, another exposure's token, and the daemon's own token", async () => {
    const url = await sb.exposeHttp({ port: 8000 });
    const origin = new URL(url).origin;
    const otherUrl = await sb.exposeHttp({ port: 8000 });
    const otherToken = new URL(otherUrl).pathname.split("/")[1]!;
    const refused = async (path: string, headers: Record<string, string> = {}) => {
      const r = await fetch(`${origin}${path}`, { headers });
      expect(r.status).toBe(401);
      expect(await r.text()).not.toContain("hello");
    };
    await refused("/");
    await refused("/hello");
    await refused(`/${"A".repeat(32)}/hello`);
    await refused(`/${otherToken}/hello`);
    await refused("/hello", { "x-sbx-token": otherToken });
    await refused("/hello", { authorization: `Bearer ${daemon.token}` });
    await refused("/hello", { cookie: `sbx_expose_${new URL(url).port}=${otherToken}` });
    const ws = await raw(url, `GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    expect(ws).toMatch(/^HTTP\/1\.1 401/);
  });

  it("refuses the egress bridge's port and absolute-URI requests (an exposure is never a proxy)", async () => {
    await expect(sb.exposeHttp({ port: 3128, public: true })).rejects.toThrow(/3128 is the sandbox's way out/);
    const url = await sb.exposeHttp({ port: 8000, public: true });
    const abs = await raw(url, "GET http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n");
    expect(abs).toMatch(/^HTTP\/1\.1 401/);
    const tunnel = await raw(url, "CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n");
    expect(tunnel).not.toMatch(/^HTTP\/1\.1 200/);
  });

  it("public exposures need no token; a closed port answers 502 naming it", async () => {
    const url = await sb.exposeHttp({ port: 8000, public: true });
    expect(new URL(url).pathname).toBe("/");
    expect(await (await fetch(`${url}open`)).text()).toBe("hello from /open");
    const dead = await sb.exposeHttp({ port: 8998 });
    const r = await fetch(`${dead}x`);
    expect(r.status).toBe(502);
    expect(r.headers.get("x-sbx-error")).toMatch(/port 8998/);
  });

  it("counts the traffic as the sandbox's and closes with the sandbox; the sandbox gets no inbound network", async () => {
    await using box = await Sandbox.create(daemon.opts);
    const p = await box.deno.run({ code: `Deno.serve({ port: 8000, onListen() {} }, () => new Response("x".repeat(100000)))`, ...quiet });
    expect(await p.httpReady).toBe(true);
    const url = await box.exposeHttp({ port: 8000 });
    const before = (await box.usage()).egress;
    expect((await (await fetch(url)).text()).length).toBe(100000);
    const after = (await box.usage()).egress;
    expect(after.bytesOut - before.bytesOut).toBeGreaterThan(100000);
    expect(after.bytesIn).toBeGreaterThan(before.bytesIn);
    // Inside, only loopback: the exposure is not an interface of the sandbox.
    expect(await box.sh`cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '`.text()).toBe("lo\n");
    await box.kill();
    await expect(fetch(url)).rejects.toThrow();
  });

  it("another tenant cannot expose, connect to, or fetch from this tenant's sandbox", async () => {
    await using theirs = await Sandbox.create({ url: daemon.url, token: TENANT2 });
    // On a connection bound to no sandbox (theirs is bound to its own).
    const raw = await RawClient.open(daemon.url, TENANT2);
    expect((await raw.call("net.exposeHttp", { sandbox: sb.id, port: 8000 })).error).toMatchObject({ code: ErrorCodes.SandboxNotFound, message: expect.stringMatching(/no running sandbox/) });
    expect((await raw.call("process.ports", { sandbox: sb.id, pid: server.pid })).error).toMatchObject({ code: ErrorCodes.SandboxNotFound, message: expect.stringMatching(/no running sandbox/) });
    raw.close();
    await expect(Sandbox.connect(sb.id, { url: daemon.url, token: TENANT2 })).rejects.toThrow(/no running sandbox/);
    // Its own sandbox has no server on that port: the pid and port of another sandbox mean nothing there.
    await expect(theirs.fetch("http://localhost:8000/")).rejects.toThrow(/nothing accepts connections on port 8000/);
  });
});

describe("exposeSsh", () => {
  it("says it is not supported and what to use instead", async () => {
    await expect(sb.exposeSsh()).rejects.toThrow(/no SSH access to sandboxes; for an interactive terminal use `sbx shell <id>`/);
  });
});

