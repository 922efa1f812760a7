import { execFile } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError, Sandbox, type EgressEvent } from "@sbx/client";
import { CLI } from "../../helpers/daemon.js";
import { useSandbox } from "../../helpers/fixtures.js";
import { ok, runBash } from "../../helpers/bash.js";
import { connect, get, rawRequests, REPLY_HEAD, type RawRequest, type RawResponse } from "../../helpers/raw-http.js";
import { startUpstreams, type Upstreams } from "../../helpers/upstreams.js";

/**
 * The egress proxy against a real daemon, real bwrap and real upstream servers on loopback
 * (issue 4: Policy and Visibility). Upstreams are reached by names pinned with
 * `egress.resolve`; every other name goes through the system resolver as in production.
 * Requests the SDKs' clients would never send are written byte for byte by a small Python
 * program inside the sandbox, straight to the proxy bridge on 127.0.0.1:3128.
 */

const execFileP = promisify(execFile);
let up: Upstreams;
let apiPort: number;
beforeAll(async () => {
  up = await startUpstreams();
  // the API port is fixed up front so that a pin can point at it
  apiPort = await freePort();
});
// registered before the daemon's hooks, so it runs after the daemon stopped
afterAll(() => up?.close());
const { daemon, sb } = useSandbox({
  daemon: () => ({
    config: { egress: { resolve: { ...up.resolve, "api-port.example.test": `127.0.0.1:${apiPort}` } } },
    args: ["--listen", `127.0.0.1:${apiPort}`],
  }),
  sandbox: { allowNet: ["api.example.test"] },
  setup: (sb) => sb.fs.writeTextFile("/home/user/ca.pem", up.caPem),
});
beforeAll(() => {
  expect(Number(new URL(daemon.url).port)).toBe(apiPort);
});

const run = (script: string, env?: Record<string, string>) => runBash(sb, script, { env });

const raw = (requests: RawRequest[]) => rawRequests(sb, requests);

/** The refusal the proxy must answer: status, X-Sbx-Error equal to the reason, and a body naming it. */
function expectRefusal(res: RawResponse, status: 400 | 403 | 502, reason: string | RegExp): void {
  expect(res.status, res.raw).toBe(status);
  if (typeof reason === "string") {
    expect(res.headers["x-sbx-error"]).toBe(reason);
    expect(res.body).toBe(`sbx egress proxy: ${reason}\n`);
  } else {
    expect(res.headers["x-sbx-error"]).toMatch(reason);
    expect(res.body).toBe(`sbx egress proxy: ${res.headers["x-sbx-error"]}\n`);
  }
  expect(res.headers["connection"]).toBe("close");
}

const seenPaths = () => up.seen.map((s) => s.path);
const seenAt = (path: string) => up.seen.filter((s) => s.path === path);

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !cond() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 25));
}

/** A port free right now (the daemon binds it a moment later). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe("the allowed path", () => {
  it("plain HTTP and CONNECT reach an allowed name at the pinned upstream", async () => {
    const out = ok(
      await run(`curl -sS --fail http://api.example.test/echo/plain; echo; curl -sS --fail --cacert ca.pem https://api.example.test/echo/tls; echo`),
      "curl",
    );
    const [plain, tls] = out.trim().split("\n").map((l) => JSON.parse(l));
    expect(plain).toMatchObject({ method: "GET", path: "/echo/plain", tls: false, host: "api.example.test" });
    expect(plain.headers.host).toBe("api.example.test");
    // hop-by-hop proxy headers are not forwarded
    expect(plain.headers["proxy-connection"]).toBeUndefined();
    expect(tls).toMatchObject({ method: "GET", path: "/echo/tls", tls: true, servername: "api.example.test", host: "api.example.test" });
  });
});

describe("forwarding plain HTTP", () => {
  it("drops hop-by-hop headers, including those the Connection header names (RFC 9110 §7.6.1)", async () => {
    const [res] = await raw([
      {
        parts: [
          "GET http://api.example.test/echo/hop HTTP/1.1\r\nHost: api.example.test\r\nConnection: keep-alive, X-Hop-Secret\r\nX-Hop-Secret: 1\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nKeep-Alive: timeout=5\r\nX-End-To-End: kept\r\n\r\n",
        ],
        wait: 1,
      },
    ]);
    expect(res!.status).toBe(200);
    const headers = JSON.parse(res!.body).headers as Record<string, string>;
    expect(headers["x-end-to-end"]).toBe("kept");
    expect(headers["proxy-authorization"]).toBeUndefined();
    expect(headers["keep-alive"]).toBeUndefined();
    expect(headers["x-hop-secret"]).toBeUndefined();
  });
});

describe("refusals", () => {
  it("a host not in allowNet gets 403 naming it, over plain HTTP and CONNECT, and the upstream never hears of it", async () => {
    const before = (await sb.usage()).egress;
    const [plain, tunnel] = await raw([get("other.example.test", "/echo/not-allowed"), connect("other.example.test:443")]);
    expectRefusal(plain!, 403, "other.example.test:80 is not in allowNet");
    expectRefusal(tunnel!, 403, "other.example.test:443 is not in allowNet");
    // curl shows it to the program too
    const r = await run(`curl -sS -o /dev/null -w '%{http_code} %{http_connect}' --cacert ca.pem https://other.example.test/echo/not-allowed-tls; echo " exit=$?"`);
    expect(r.out).toBe("000 403 exit=56\n");
    expect(r.err).toMatch(/CONNECT tunnel failed, response 403/);
    const r2 = await run(`curl -sS -D - http://other.example.test/echo/not-allowed`);
    expect(r2.out).toContain("HTTP/1.1 403 Forbidden\r\nX-Sbx-Error: other.example.test:80 is not in allowNet\r\n");
    expect(r2.out.endsWith("\r\n\r\nsbx egress proxy: other.example.test:80 is not in allowNet\n")).toBe(true);
    expect(up.seen.filter((s) => s.host === "other.example.test")).toEqual([]);
    // The operator sees them in the daemon's log (rate-limited), not only in egressLog().
    expect(daemon.logs()).toContain(`warn sandbox ${sb.id}: egress refused CONNECT other.example.test:443: other.example.test:443 is not in allowNet`);
    const after = (await sb.usage()).egress;
    expect(after.requests - before.requests).toBe(4);
    expect(after.blocked - before.blocked).toBe(4);
    const log = await sb.egressLog(4);
    expect(log.map((e) => [e.method, e.host, e.port, e.allowed, e.reason])).toEqual([
      ["GET", "other.example.test", 80, false, "other.example.test:80 is not in allowNet"],
      ["CONNECT", "other.example.test", 443, false, "other.example.test:443 is not in allowNet"],
      ["CONNECT", "other.example.test", 443, false, "other.example.test:443 is not in allowNet"],
      ["GET", "other.example.test", 80, false, "other.example.test:80 is not in allowNet"],
    ]);
  });

  it("loopback, private, link-local and metadata literals in every spelling are refused via CONNECT and absolute-URI", async () => {
    const cases: Array<[string, string]> = [
      ["127.0.0.1", "127.0.0.1"],
      ["127.1", "127.0.0.1"],
      ["0x7f.0.0.1", "127.0.0.1"],
      ["2130706433", "127.0.0.1"],
      ["0177.0.0.1", "127.0.0.1"],
      ["[::ffff:127.0.0.1]", "127.0.0.1"],
      ["[::1]", "[::1]"],
      ["10.0.0.1", "10.0.0.1"],
      ["192.168.1.1", "192.168.1.1"],
      ["169.254.169.254", "169.254.169.254"],
      ["[fd00:ec2::254]", "[fd00:ec2::254]"],
      ["0.0.0.0", "0.0.0.0"],
    ];
    const before = (await sb.usage()).egress;
    const logged = (await sb.egressLog()).length;
    const port = up.httpPort;
    const res = await raw(cases.flatMap(([spelling]) => [connect(`${spelling}:${port}`), get(`${spelling}:${port}`, "/echo/literal")]));
    cases.forEach(([, canonical], i) => {
      expectRefusal(res[2 * i]!, 403, `${canonical}:${port} is not in allowNet`);
      expectRefusal(res[2 * i + 1]!, 403, `${canonical}:${port} is not in allowNet`);
    });
    expect(seenPaths()).not.toContain("/echo/literal");
    const after = (await sb.usage()).egress;
    expect(after.blocked - before.blocked).toBe(cases.length * 2);
    const log = (await sb.egressLog()).slice(logged);
    expect(log.map((e) => e.host)).toEqual(cases.flatMap(([, c]) => [c.replace(/^\[|\]$/g, ""), c.replace(/^\[|\]$/g, "")]));
    expect(log.every((e) => !e.allowed)).toBe(true);
  });

  it("an allowed name that resolves to loopback (DNS rebinding) is refused; only a pin may point there", async () => {
    await sb.setAllowNet(["localhost", "api.example.test"]);
    try {
      const [tunnel, plain] = await raw([connect(`localhost:${up.httpPort}`), get(`localhost:${up.httpPort}`, "/echo/rebinding")]);
      const reason = new RegExp(`^localhost resolves to a refused address: (127\\.0\\.0\\.1|::1) is (a )?loopback.*; only an IP literal in allowNet \\((127\\.0\\.0\\.1|\\[::1\\]):${up.httpPort}\\) can allow it$`);
      expectRefusal(tunnel!, 403, reason);
      expectRefusal(plain!, 403, reason);
      expect(seenPaths()).not.toContain("/echo/rebinding");
      // curl, told to ignore NO_PROXY, gets the same answer
      const r = await run(`curl -sS --noproxy '' -o /dev/null -w '%{http_code}' http://localhost:${up.httpPort}/echo/rebinding`);
      expect(r.out).toBe("403");
      const last = (await sb.egressLog(1))[0]!;
      expect(last).toMatchObject({ host: "localhost", port: up.httpPort, allowed: false, method: "GET" });
      expect(last.reason).toMatch(reason);
    } finally {
      await sb.setAllowNet(["api.example.test"]);
    }
  });

  it("an IP literal in allowNet allows exactly that address (any spelling of it) and port", async () => {
    await sb.setAllowNet([`127.0.0.1:${up.httpPort}`]);
    try {
      const [plain, spelled, tunnel, otherAddr, otherPort] = await raw([
        get(`127.0.0.1:${up.httpPort}`, "/echo/literal-allowed", 1),
        get(`0x7f.1:${up.httpPort}`, "/echo/literal-spelled", 1),
        { parts: [`CONNECT 127.0.0.1:${up.httpPort} HTTP/1.1\r\nHost: 127.0.0.1:${up.httpPort}\r\n\r\n`, REPLY_HEAD, `GET /echo/literal-tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`], wait: 2 },
        get(`127.0.0.2:${up.httpPort}`, "/echo/literal-other"),
        connect(`127.0.0.1:${up.httpsPort}`),
      ]);
      expect(plain!.status).toBe(200);
      expect(JSON.parse(plain!.body)).toMatchObject({ path: "/echo/literal-allowed", headers: { host: `127.0.0.1:${up.httpPort}` } });
      expect(spelled!.status).toBe(200);
      expect(JSON.parse(spelled!.body)).toMatchObject({ path: "/echo/literal-spelled" });
      expect(tunnel!.raw.startsWith("HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 200 OK\r\n")).toBe(true);
      expect(tunnel!.raw).toContain('"path":"/echo/literal-tunnel"');
      expectRefusal(otherAddr!, 403, `127.0.0.2:${up.httpPort} is not in allowNet`);
      expectRefusal(otherPort!, 403, `127.0.0.1:${up.httpsPort} is not in allowNet: it is allowed only on port ${up.httpPort}`);
      expect(seenPaths()).toEqual(expect.arrayContaining(["/echo/literal-allowed", "/echo/literal-spelled", "/echo/literal-tunnel"]));
      expect(seenPaths()).not.toContain("/echo/literal-other");
      // a real client, told to use the proxy for 127.0.0.1 despite NO_PROXY
      const r = await run(`curl -sS --fail --noproxy '' http://127.0.0.1:${up.httpPort}/echo/literal-curl`);
      expect(JSON.parse(r.out)).toMatchObject({ path: "/echo/literal-curl" });
    } finally {
      await sb.setAllowNet(["api.example.test"]);
    }
  });

  it("the daemon's own API port is refused even when allowNet names it", async () => {
    const own = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === "IPv4" && !i.internal)?.address;
    const list = [`127.0.0.1:${apiPort}`, "[::1]", "localhost", ...(own ? [own] : [])];
    await sb.setAllowNet(list);
    try {
      const targets = [`127.0.0.1:${apiPort}`, `[::1]:${apiPort}`, ...(own ? [`${own}:${apiPort}`] : [])];
      const res = await raw([...targets.flatMap((t) => [connect(t), get(t, "/")]), connect(`localhost:${apiPort}`)]);
      targets.forEach((t, i) => {
        const reason = `${t} is the sbx daemon's API, which sandboxes can never reach`;
        expectRefusal(res[2 * i]!, 403, reason);
        expectRefusal(res[2 * i + 1]!, 403, reason);
      });
      expectRefusal(res.at(-1)!, 403, /^localhost resolves to a refused address: .*sbx daemon's API, which sandboxes can never reach$/);
    } finally {
      await sb.setAllowNet(["api.example.test"]);
    }
  });

  it("a name an operator pinned to the daemon's API is refused too", async () => {
    await sb.setAllowNet(["api-port.example.test"]);
    try {
      const [tunnel, plain] = await raw([connect("api-port.example.test:443"), get("api-port.example.test", "/")]);
      const reason = `api-port.example.test is pinned by egress.resolve to 127.0.0.1:${apiPort} is the sbx daemon's API, which sandboxes can never reach`;
      expectRefusal(tunnel!, 403, reason);
      expectRefusal(plain!, 403, reason);
    } finally {
      await sb.setAllowNet(["api.example.test"]);
    }
  });
});

describe("matching", () => {
  it("names match after normalisation (case, trailing dot), and *.domain matches strict subdomains only", async () => {
    await sb.setAllowNet(["*.example.test"]);
    try {
      const r = await run(
        [
          "http://API.Example.TEST./echo/normalised",
          "http://other.example.test/echo/wild",
          "http://example.test/echo/apex",
          "http://files.pythonhosted.test/echo/elsewhere",
        ]
          .map((u) => `curl -sS -o /dev/null -w '%{http_code} ' ${u}`)
          .join("; "),
      );
      expect(r.out).toBe("200 200 403 403 ");
      const log = await sb.egressLog(4);
      expect(log.map((e) => [e.host, e.allowed, e.reason ?? ""])).toEqual([
        ["api.example.test", true, ""],
        ["other.example.test", true, ""],
        ["example.test", false, "example.test:80 is not in allowNet: *.example.test matches subdomains only, not example.test itself"],
        ["files.pythonhosted.test", false, "files.pythonhosted.test:80 is not in allowNet"],
      ]);
      expect(seenAt("/echo/normalised")).toHaveLength(1);
    } finally {
      await sb.setAllowNet(["api.example.test"]);
    }
  });

  it("an allowed name that does not resolve is 502 naming it", async () => {
    await sb.setAllowNet(["nxdomain.invalid"]);
    try {
      const before = (await sb.usage()).egress;
      const [tunnel, plain] = await raw([connect("nxdomain.invalid:443"), get("nxdomain.invalid", "/")]);
      expectRefusal(tunnel!, 502, "nxdomain.invalid does not resolve (ENOTFOUND)");
      expectRefusal(plain!, 502, "nxdomain.invalid does not resolve (ENOTFOUND)");
      const after = (await sb.usage()).egress;
      expect([after.requests - before.requests, after.blocked - before.blocked]).toEqual([2, 2]);
    } finally {
      await sb.setAllowNet(["api.example.test"]);
    }
  });

  it("a TLS ClientHello whose SNI names another host than the CONNECT target does not get through", async () => {
    await sb.setAllowNet(["api.example.test"]);
    const script = `
import socket, ssl
def attempt(sni, path):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    s.sendall(b"CONNECT api.example.test:443 HTTP/1.1\\r\\nHost: api.example.test:443\\r\\n\\r\\n")
    reply = b""
    while b"\\r\\n\\r\\n" not in reply:
        reply += s.recv(4096)
    try:
        t = ssl.create_default_context(cafile="/home/user/ca.pem").wrap_socket(s, server_hostname=sni)
        t.sendall(("GET " + path + " HTTP/1.1\\r\\nHost: " + sni + "\\r\\nConnection: close\\r\\n\\r\\n").encode())
        print(sni, "reached", t.recv(4096).split(b"\\r\\n")[0].decode())
    except (OSError, ssl.SSLError) as e:
        print(sni, "refused", type(e).__name__)
def attempt_split(sni, path):
    # The ClientHello re-sent as two TLS records, cut where its extensions start (the first record then looks like a ClientHello without SNI).
    s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
    s.sendall(b"CONNECT api.example.test:443 HTTP/1.1\\r\\nHost: api.example.test:443\\r\\n\\r\\n")
    reply = b""
    while b"\\r\\n\\r\\n" not in reply:
        reply += s.recv(4096)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    t = ssl.create_default_context(cafile="/home/user/ca.pem").wrap_bio(inc, out, server_hostname=sni)
    first = True
    try:
        while True:
            try:
                t.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            data = out.read()
            if first:
                msg = data[5:]
                cut = 4 + 2 + 32
                cut += 1 + msg[cut]
                cut += 2 + int.from_bytes(msg[cut:cut + 2], "big")
                cut += 1 + msg[cut]
                data = b"".join(bytes([0x16, 3, 1]) + len(p).to_bytes(2, "big") + p for p in (msg[:cut], msg[cut:]))
                first = False
            s.sendall(data)
            got = s.recv(65536)
            if not got:
                raise OSError("closed")
            inc.write(got)
        s.sendall(out.read())
        t.write(("GET " + path + " HTTP/1.1\\r\\nHost: " + sni + "\\r\\nConnection: close\\r\\n\\r\\n").encode())
        s.sendall(out.read())
        while True:
            try:
                print(sni, "split reached", t.read(4096).split(b"\\r\\n")[0].decode())
                break
            except ssl.SSLWantReadError:
                inc.write(s.recv(65536))
    except (OSError, ssl.SSLError) as e:
        print(sni, "split refused", type(e).__name__)
attempt("api.example.test", "/echo/sni-same")
attempt("other.example.test", "/echo/sni-fronted")
attempt_split("api.example.test", "/echo/sni-split-same")
attempt_split("other.example.test", "/echo/sni-split-fronted")
`;
    await sb.fs.writeTextFile("/tmp/sni.py", script);
    const out = ok(await run("python3 /tmp/sni.py"), "sni.py");
    const lines = out.split("\n");
    expect(lines[0]).toBe("api.example.test reached HTTP/1.1 200 OK");
    // domain fronting: other.example.test is not allowed, but shares the allowed name's address
    expect(seenAt("/echo/sni-fronted")).toEqual([]);
    expect(lines[1]).toMatch(/^other\.example\.test refused \w+$/);
    // The same with the ClientHello split across two records: the proxy reassembles it before deciding.
    expect(lines[2]).toBe("api.example.test split reached HTTP/1.1 200 OK");
    expect(lines[3]).toMatch(/^other\.example\.test split refused \w+$/);
    expect(seenAt("/echo/sni-split-fronted")).toEqual([]);
    expect(seenAt("/echo/sni-split-same")).toHaveLength(1);
  });
});

describe("malformed and smuggling-shaped requests", () => {
  it("Content-Length with Transfer-Encoding is 400 and never forwarded", async () => {
    const smuggled = "GET /echo/smuggled-clte HTTP/1.1\r\nHost: api.example.test\r\n\r\n";
    const body = `0\r\n\r\n${smuggled}`;
    const [res] = await raw([
      { parts: [`POST http://api.example.test/echo/clte HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`] },
    ]);
    expectRefusal(res!, 400, /^malformed request: /);
    expect(seenPaths().filter((p) => p.includes("clte"))).toEqual([]);
  });

  it("an obs-folded header is 400 and never forwarded", async () => {
    const [res] = await raw([{ parts: [`GET http://api.example.test/echo/obsfold HTTP/1.1\r\nHost: api.example.test\r\nX-Folded: a\r\n  b\r\n\r\n`] }]);
    expectRefusal(res!, 400, /^malformed request: /);
    expect(seenPaths()).not.toContain("/echo/obsfold");
  });

  it("a bad chunk size is 400 and never forwarded", async () => {
    const [res] = await raw([
      { parts: [`POST http://api.example.test/echo/badchunk HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`] },
    ]);
    expectRefusal(res!, 400, /^malformed request: /);
    // the upstream must not see the request, even its head
    await new Promise((r) => setTimeout(r, 300));
    expect(seenPaths()).not.toContain("/echo/badchunk");
  });

  it("a bad chunk arriving after forwarding began is 400, and the upstream request is aborted, not left hanging", async () => {
    const [res] = await raw([
      {
        parts: [
          `POST http://api.example.test/echo/late-badchunk HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`,
          // sent 0.5 s later, once the proxy has started the upstream request
          0.5,
          "zz\r\nworld\r\n0\r\n\r\n",
        ],
      },
    ]);
    expectRefusal(res!, 400, "malformed request: Parse Error: Invalid character in chunk size");
    await waitFor(() => up.seen.find((s) => s.path === "/echo/late-badchunk")?.aborted === true, 2000);
    const entry = up.seen.find((s) => s.path === "/echo/late-badchunk");
    // the upstream got the head (the proxy streams), but never a complete request, and it was cut off
    expect(entry).toMatchObject({ complete: false, aborted: true });
  });

  it("a client that goes away mid-body leaves no upstream request hanging", async () => {
    await raw([{ parts: [`POST http://api.example.test/echo/abandoned HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 100\r\n\r\nabc`, 0.5], wait: 0.1 }]);
    await waitFor(() => up.seen.find((s) => s.path === "/echo/abandoned")?.aborted === true, 2000);
    expect(up.seen.find((s) => s.path === "/echo/abandoned")).toMatchObject({ complete: false, aborted: true });
  });

  it("a Host header that disagrees with the absolute-URI is 400 naming both", async () => {
    const [res, spelled] = await raw([
      { parts: [`GET http://api.example.test/echo/mismatch HTTP/1.1\r\nHost: other.example.test\r\n\r\n`] },
      { parts: [`GET http://api.example.test/echo/mismatch-port HTTP/1.1\r\nHost: api.example.test:8080\r\n\r\n`] },
    ]);
    expectRefusal(res!, 400, "the Host header 'other.example.test' disagrees with the request target api.example.test:80");
    expectRefusal(spelled!, 400, "the Host header 'api.example.test:8080' disagrees with the request target api.example.test:80");
    expect(seenPaths().filter((p) => p.includes("mismatch"))).toEqual([]);
  });

  it("an https:// absolute-URI (TLS to be done by the proxy) is 400: use CONNECT", async () => {
    const [res] = await raw([{ parts: ["GET https://api.example.test/echo/https-absolute HTTP/1.1\r\nHost: api.example.test\r\n\r\n"] }]);
    expectRefusal(res!, 400, "use CONNECT for https:// through this proxy");
    expect(seenPaths()).not.toContain("/echo/https-absolute");
  });

  it("CONNECT without a port is 400", async () => {
    const [res] = await raw([connect("api.example.test")]);
    expectRefusal(res!, 400, 'target "api.example.test" has no port; a CONNECT target is host:port');
  });

  it("an origin-form request (not a proxy request) is 400", async () => {
    const [res] = await raw([{ parts: ["GET /echo/origin-form HTTP/1.1\r\nHost: api.example.test\r\n\r\n"] }]);
    expect(res!.status).toBe(400);
    expect(res!.headers["x-sbx-error"]).toMatch(/absolute http:\/\/ or https:\/\/ URI/);
    expect(seenPaths()).not.toContain("/echo/origin-form");
  });
});

describe("programs that ignore the proxy variables get no network", () => {
  it("curl --noproxy '*' cannot even resolve an allowed name", async () => {
    const r = await run(`curl -sS --noproxy '*' http://api.example.test/echo/direct; echo "exit=$?"`);
    expect(r.out).toBe("exit=6\n");
    expect(r.err).toMatch(/Could not resolve host: api\.example\.test/);
  });

  it("a direct TCP connection to the upstream's loopback port, UDP DNS and name lookups all fail", async () => {
    const script = `
import socket
def attempt(what, f):
    try:
        f()
        print(what, "OK")
    except OSError as e:
        print(what, type(e).__name__, e.errno)
attempt("tcp-loopback", lambda: socket.create_connection(("127.0.0.1", ${up.httpPort}), timeout=3))
attempt("tcp-host", lambda: socket.create_connection(("${Object.values(networkInterfaces()).flat().find((i) => i && i.family === "IPv4" && !i.internal)?.address ?? "192.0.2.1"}", ${up.httpPort}), timeout=3))
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(b"\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01", ("8.8.8.8", 53))
    s.recvfrom(512)
attempt("udp-dns", udp)
attempt("getaddrinfo", lambda: socket.getaddrinfo("example.com", 443))
print("interfaces", sorted(n for _, n in socket.if_nameindex()))
`;
    await sb.fs.writeTextFile("/tmp/direct.py", script);
    const out = ok(await run("python3 /tmp/direct.py"), "direct.py");
    const lines = out.trim().split("\n");
    expect(lines[0]).toBe("tcp-loopback ConnectionRefusedError 111");
    expect(lines[1]).toBe("tcp-host OSError 101");
    expect(lines[2]).toBe("udp-dns OSError 101");
    expect(lines[3]).toMatch(/^getaddrinfo gaierror -[23]$/);
    expect(lines[4]).toBe("interfaces ['lo']");
  });
});

describe("allowNet validation", () => {
  it.each([
    ["*", /would allow every host/],
    ["*.com", /public suffix "com"/],
    ["a%00b", /./],
    ["user@host", /./],
  ])("create refuses %j with InvalidOptionError naming allowNet[1]", async (entry, why) => {
    const err = await Sandbox.create({ ...daemon.opts, allowNet: ["api.example.test", entry] }).then(
      async (s) => {
        await s.kill();
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidOptionError);
    const message = (err as Error).message;
    expect(message).toContain(`params.allowNet[1]: allowNet entry ${JSON.stringify(entry)} `);
    expect(message).toMatch(why);
  });

  it("setAllowNet with a bad entry is refused and the old list stays in force", async () => {
    const err = await sb.setAllowNet(["other.example.test", "*.com"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as Error).message).toContain('params.allowNet[1]: allowNet entry "*.com"');
    const r = await run(`curl -sS -o /dev/null -w '%{http_code} ' http://api.example.test/echo/still; curl -sS -o /dev/null -w '%{http_code}' http://other.example.test/echo/still`);
    expect(r.out).toBe("200 403");
  });
});

/** Starts a Python program that holds CONNECT tunnels open and reports, line by line, what happens to them. */
async function holdTunnels(hosts: string[]) {
  const script = `
import socket, sys, time
conns = {}
def ask(s, path):
    s.sendall(("GET " + path + " HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n").encode())
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        c = s.recv(4096)
        if not c:
            raise EOFError("closed")
        data += c
    head, _, body = data.partition(b"\\r\\n\\r\\n")
    length = int([l for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(body) < length:
        c = s.recv(4096)
        if not c:
            raise EOFError("closed")
        body += c
    return head.split(b"\\r\\n")[0].decode()
for host in sys.argv[1:]:
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(("CONNECT " + host + ":80 HTTP/1.1\\r\\nHost: " + host + ":80\\r\\n\\r\\n").encode())
    reply = b""
    while b"\\r\\n\\r\\n" not in reply:
        reply += s.recv(4096)
    print(host, "connect", reply.split(b"\\r\\n")[0].decode(), "first", ask(s, "/echo/held-" + host), flush=True)
    conns[host] = s
print("ready", flush=True)
sys.stdin.readline()
for host, s in conns.items():
    s.settimeout(3)
    try:
        print(host, "again", ask(s, "/echo/held-again-" + host), flush=True)
    except (OSError, EOFError) as e:
        print(host, "closed", type(e).__name__, flush=True)
`;
  await sb.fs.writeTextFile("/tmp/hold.py", script);
  const p = await sb.spawn("python3", { args: ["/tmp/hold.py", ...hosts], stdin: "piped" });
  const reader = p.stdout!.getReader();
  let text = "";
  const readUntil = async (marker: string) => {
    while (!text.includes(marker)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    return text;
  };
  return {
    readUntil,
    async finish() {
      const w = p.stdin!.getWriter();
      await w.write(new TextEncoder().encode("go\n"));
      await w.close();
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      const status = await p.status;
      return { text, code: status.code };
    },
  };
}

describe("setAllowNet on a running sandbox", () => {
  it("a newly allowed host works at once, and one removed is refused", async () => {
    await sb.setAllowNet(["api.example.test", "other.example.test"]);
    const r = await run(`curl -sS -o /dev/null -w '%{http_code} ' http://other.example.test/echo/new; curl -sS -o /dev/null -w '%{http_code} ' --cacert ca.pem https://other.example.test/echo/new-tls; curl -sS -o /dev/null -w '%{http_code}' http://api.example.test/echo/new`);
    expect(r.out).toBe("200 200 200");
    await sb.setAllowNet(["other.example.test"]);
    const r2 = await run(`curl -sS -o /dev/null -w '%{http_code} ' http://other.example.test/echo/new; curl -sS -o /dev/null -w '%{http_code}' http://api.example.test/echo/new`);
    expect(r2.out).toBe("200 403");
    await sb.setAllowNet(["api.example.test"]);
  });

  it("an open tunnel to a host no longer allowed is closed; one still allowed stays open", async () => {
    await sb.setAllowNet(["api.example.test", "other.example.test"]);
    const held = await holdTunnels(["api.example.test", "other.example.test"]);
    const early = await held.readUntil("ready\n");
    expect(early).toBe(
      "api.example.test connect HTTP/1.1 200 Connection Established first HTTP/1.1 200 OK\n" +
        "other.example.test connect HTTP/1.1 200 Connection Established first HTTP/1.1 200 OK\n" +
        "ready\n",
    );
    await sb.setAllowNet(["api.example.test"]);
    const { text, code } = await held.finish();
    expect(code).toBe(0);
    expect(text.split("\n").slice(3).join("\n")).toMatch(/^api\.example\.test again HTTP\/1\.1 200 OK\nother\.example\.test closed \w+\n$/);
    expect(seenPaths()).toContain("/echo/held-again-api.example.test");
    expect(seenPaths()).not.toContain("/echo/held-again-other.example.test");
  });

  it("a Python HTTPS keep-alive connection to a removed host is cut, and reconnecting is refused", async () => {
    await sb.setAllowNet(["api.example.test", "other.example.test"]);
    const script = `
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile="/home/user/ca.pem")
c = http.client.HTTPSConnection("127.0.0.1", 3128, context=ctx, timeout=5)
c.set_tunnel("other.example.test", 443)
c.request("GET", "/echo/keepalive-1")
r = c.getresponse(); r.read()
print("first", r.status, r.getheader("connection") or "keep-alive", flush=True)
sys.stdin.readline()
try:
    c.request("GET", "/echo/keepalive-2")
    r = c.getresponse(); r.read()
    print("second", r.status)
except Exception as e:
    print("second failed", type(e).__name__)
c2 = http.client.HTTPSConnection("127.0.0.1", 3128, context=ctx, timeout=5)
c2.set_tunnel("other.example.test", 443)
try:
    c2.request("GET", "/echo/keepalive-3")
    print("third", c2.getresponse().status)
except OSError as e:
    print("third failed", e)
`;
    await sb.fs.writeTextFile("/tmp/keepalive.py", script);
    const p = await sb.spawn("python3", { args: ["/tmp/keepalive.py"], stdin: "piped" });
    const reader = p.stdout!.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text).toBe("first 200 keep-alive\n");
    await sb.setAllowNet(["api.example.test"]);
    const w = p.stdin!.getWriter();
    await w.write(new TextEncoder().encode("go\n"));
    await w.close();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect((await p.status).code).toBe(0);
    expect(text).toMatch(/^first 200 keep-alive\nsecond failed (RemoteDisconnected|ConnectionResetError|SSLEOFError|SSLZeroReturnError|BrokenPipeError)\nthird failed Tunnel connection failed: 403 Forbidden\n$/);
    expect(seenPaths()).not.toContain("/echo/keepalive-2");
  });

  it("`sbx net ID --allow HOST` replaces the list from the CLI", async () => {
    const env = { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token };
    const res = await execFileP(process.execPath, [CLI, "net", sb.id, "--allow", "other.example.test", "--allow", "registry.example.test"], { env });
    expect(res.stdout).toBe("");
    const r = await run(
      `for h in other.example.test registry.example.test api.example.test; do curl -sS -o /dev/null -w "%{http_code} " http://$h/echo/cli; done`,
    );
    expect(r.out).toBe("200 200 403 ");
    const bad = await execFileP(process.execPath, [CLI, "net", sb.id, "--allow", "*"], { env }).catch((e: any) => e);
    expect(bad.code).not.toBe(0);
    // The daemon's params.allowNet[0] comes back as the flag typed.
    expect(bad.stderr).toBe('sbx net: --allow: allowNet entry "*" would allow every host; name the hosts the sandbox needs\n');
    await execFileP(process.execPath, [CLI, "net", sb.id], { env });
    const none = await run(`curl -sS -o /dev/null -w "%{http_code}" http://other.example.test/echo/cli-none`);
    expect(none.out).toBe("403");
    await sb.setAllowNet(["api.example.test"]);
  });
});

describe("visibility", () => {
  it("usage().egress counts requests, blocked, and the exact bytes out and in", async () => {
    const before = (await sb.usage()).egress;
    const body = "b".repeat(1000);
    await sb.fs.writeTextFile("/tmp/body.txt", body);
    const r = ok(
      await run(
        `curl -sS --fail -o /tmp/resp1 --data-binary @/tmp/body.txt -H 'Content-Type: text/plain' http://api.example.test/echo/count; ` +
          `curl -sS --fail -o /tmp/resp2 http://api.example.test/bytes/5000; ` +
          `curl -sS -o /dev/null http://other.example.test/echo/count-blocked; ` +
          `stat -c %s /tmp/resp1 /tmp/resp2`,
      ),
      "curl",
    );
    const [resp1, resp2] = r.trim().split("\n").map(Number);
    expect(resp2).toBe(5000);
    const after = (await sb.usage()).egress;
    expect(after.requests - before.requests).toBe(3);
    expect(after.blocked - before.blocked).toBe(1);
    expect(after.bytesOut - before.bytesOut).toBe(1000);
    expect(after.bytesIn - before.bytesIn).toBe(resp1! + 5000);
  });

  it("tunnel bytes are counted both ways, including bytes sent together with the CONNECT", async () => {
    const request = "GET /bytes/3000 HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n";
    const b0 = (await sb.usage()).egress;
    const [separate] = await raw([{ parts: ["CONNECT api.example.test:80 HTTP/1.1\r\nHost: api.example.test:80\r\n\r\n", REPLY_HEAD, request], wait: 3 }]);
    const b1 = (await sb.usage()).egress;
    const established = "HTTP/1.1 200 Connection Established\r\n\r\n";
    expect(separate!.raw.startsWith(established)).toBe(true);
    const inner = separate!.raw.length - established.length;
    expect(b1.bytesOut - b0.bytesOut).toBe(request.length);
    expect(b1.bytesIn - b0.bytesIn).toBe(inner);
    // pipelined: the request rides in the same write as the CONNECT
    const [pipelined] = await raw([{ parts: [`CONNECT api.example.test:80 HTTP/1.1\r\nHost: api.example.test:80\r\n\r\n${request}`], wait: 3 }]);
    const b2 = (await sb.usage()).egress;
    expect(pipelined!.raw.length).toBe(separate!.raw.length);
    expect(b2.bytesIn - b1.bytesIn).toBe(inner);
    expect(b2.bytesOut - b1.bytesOut).toBe(request.length);
  });

  it("egressLog lists decisions oldest first with time, method, host, port and why not", async () => {
    const t0 = Date.now();
    await run(`curl -sS -o /dev/null http://api.example.test/echo/log; curl -sS -o /dev/null --cacert ca.pem https://api.example.test/echo/log; curl -sS -o /dev/null -X POST http://nope.example.test:8080/echo/log`);
    const log = await sb.egressLog(3);
    expect(log).toHaveLength(3);
    expect(log.map(({ time, ...e }) => e)).toEqual([
      { host: "api.example.test", port: 80, method: "GET", allowed: true },
      { host: "api.example.test", port: 443, method: "CONNECT", allowed: true },
      { host: "nope.example.test", port: 8080, method: "POST", allowed: false, reason: "nope.example.test:8080 is not in allowNet" },
    ]);
    for (const e of log) {
      expect(Date.parse(e.time)).toBeGreaterThanOrEqual(t0 - 1000);
      expect(Date.parse(e.time)).toBeLessThanOrEqual(Date.now());
    }
    expect(await sb.egressLog(1)).toEqual(log.slice(2));
    expect((await sb.egressLog()).length).toBeGreaterThan(3);
  });

  it("onNetwork delivers decisions live, and nothing after stop()", async () => {
    const events: EgressEvent[] = [];
    const stop = await sb.onNetwork((e) => events.push(e));
    await run(`curl -sS -o /dev/null http://api.example.test/echo/live; curl -sS -o /dev/null http://other.example.test/echo/live`);
    for (let i = 0; i < 50 && events.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(events.map(({ time, ...e }) => e)).toEqual([
      { host: "api.example.test", port: 80, method: "GET", allowed: true },
      { host: "other.example.test", port: 80, method: "GET", allowed: false, reason: "other.example.test:80 is not in allowNet" },
    ]);
    expect(events.map((e) => e.time)).toEqual((await sb.egressLog(2)).map((e) => e.time));
    // a second watcher on another connection sees the same stream
    const other = await Sandbox.connect(sb.id, daemon.opts);
    const otherEvents: EgressEvent[] = [];
    const stopOther = await other.onNetwork((e) => otherEvents.push(e));
    await stop();
    await run(`curl -sS -o /dev/null http://api.example.test/echo/after-stop`);
    for (let i = 0; i < 50 && otherEvents.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    expect(events).toHaveLength(2);
    expect(otherEvents.map((e) => [e.host, e.allowed])).toEqual([["api.example.test", true]]);
    await stopOther();
    await other.close();
  });

  it("`sbx logs ID --net` prints the log, as JSON with --json", async () => {
    await run(`curl -sS -o /dev/null http://other.example.test/echo/cli-log`);
    const env = { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token };
    const json = await execFileP(process.execPath, [CLI, "logs", sb.id, "--net", "--json"], { env });
    const parsed = JSON.parse(json.stdout) as EgressEvent[];
    expect(parsed).toEqual(await sb.egressLog());
    expect(parsed.at(-1)).toMatchObject({ host: "other.example.test", port: 80, method: "GET", allowed: false, reason: "other.example.test:80 is not in allowNet" });
    const text = await execFileP(process.execPath, [CLI, "logs", sb.id, "--net"], { env });
    const last = text.stdout.trim().split("\n").at(-1)!;
    expect(last).toBe(`${parsed.at(-1)!.time}  BLOCKED  GET other.example.test:80  (other.example.test:80 is not in allowNet)`);
    expect(text.stdout).toMatch(/ {2}allowed {2}CONNECT api\.example\.test:443\n/);
  });
});
