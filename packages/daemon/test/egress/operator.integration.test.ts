import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { startDaemon } from "../helpers/daemon.js";
import { useDaemon } from "../helpers/fixtures.js";
import { runBash } from "../helpers/bash.js";
import { startUpstreams, type Upstreams } from "../helpers/upstreams.js";

/**
 * The networks operators really have (issue 16 items 8-9): a gateway or internal CA every
 * sandbox must trust, and internal address ranges the operator approves for all sandboxes.
 */

let up: Upstreams;
let dir: string;

beforeAll(async () => {
  up = await startUpstreams();
  dir = mkdtempSync(join(tmpdir(), "sbx-operator-"));
  writeFileSync(join(dir, "corp-ca.pem"), up.caPem);
});
// registered before the daemons' hooks, so it runs after they stopped
afterAll(async () => {
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});
/** A daemon with the operator's settings, and one without. */
const daemon = useDaemon(() => ({ config: { egress: { resolve: up.resolve, sandboxCaCerts: [join(dir, "corp-ca.pem")], allowedRanges: ["127.0.0.0/8"] } }, args: ["--warm-pool", "0"] }));
const plain = useDaemon(() => ({ config: { egress: { resolve: up.resolve } }, args: ["--warm-pool", "0"] }));

describe("egress.sandboxCaCerts", () => {
  it("every sandbox trusts the operator's CA (a re-signing gateway): tools verify with it and no flag", async () => {
    await using sb = await Sandbox.create({ ...daemon.opts, allowNet: ["api.example.test"] });
    const ok = await runBash(sb, "curl -sS -o /dev/null -w '%{http_code}' https://api.example.test/echo/corp-ca && python3 -c 'import urllib.request; print(urllib.request.urlopen(\"https://api.example.test/echo/corp-ca-py\").status)'");
    expect(ok.out).toBe("200200\n");
    // Without the config, the same request fails verification.
    await using other = await Sandbox.create({ ...plain.opts, allowNet: ["api.example.test"] });
    const refused = await runBash(other, "curl -sS -o /dev/null https://api.example.test/echo/no-corp-ca");
    expect(refused.code).toBe(60);
    expect(refused.err).toMatch(/SSL certificate problem/);
  });
});

describe("egress.allowedRanges", () => {
  it("an approved range is reachable by name and address without an IP literal in allowNet; the daemon's API never", async () => {
    const port = up.httpPort;
    await using sb = await Sandbox.create({ ...daemon.opts, allowNet: [`localhost:${port}`, `localhost:${new URL(daemon.url).port}`] });
    const curl = (url: string) => runBash(sb, `env -u NO_PROXY -u no_proxy curl -sS -o /dev/null -w '%{http_code}' --proxy http://127.0.0.1:3128 ${url}`);
    const reached = await curl(`http://localhost:${port}/echo/approved`);
    expect(reached.out, reached.err).toBe("200");
    const api = await runBash(sb, `env -u NO_PROXY -u no_proxy curl -sS -D - -o /dev/null --proxy http://127.0.0.1:3128 http://localhost:${new URL(daemon.url).port}/`);
    expect(api.out).toMatch(/^HTTP\/1\.1 403 /);
    expect(api.out).toContain("is the sbx daemon's API, which sandboxes can never reach");
    // A daemon without the approval refuses the same loopback name.
    await using other = await Sandbox.create({ ...plain.opts, allowNet: [`localhost:${port}`] });
    const refused = await runBash(other, `env -u NO_PROXY -u no_proxy curl -sS -D - -o /dev/null --proxy http://127.0.0.1:3128 http://localhost:${port}/echo/not-approved`);
    expect(refused.out).toMatch(/^HTTP\/1\.1 403 /);
    expect(refused.out).toMatch(/localhost resolves to a refused address: 127\.0\.0\.1 is a loopback address/);
  });

  it("a range covering a metadata address, or that is not a CIDR block, is refused at start", async () => {
    await expect(startDaemon({ config: { egress: { allowedRanges: ["169.254.0.0/16"] } } })).rejects.toThrow(
      "config.egress.allowedRanges[0]: '169.254.0.0/16' covers the cloud metadata address 169.254.169.254, which sandboxes may never reach",
    );
    await expect(startDaemon({ config: { egress: { allowedRanges: ["10.0.0.0"] } } })).rejects.toThrow("config.egress.allowedRanges[0]: '10.0.0.0' is not a CIDR block such as 10.20.0.0/16");
  });
});

/** A minimal upstream proxy of the operator's: CONNECT only, recording what it was asked (names it maps like egress.resolve). */
async function upstreamProxy(resolve: Record<string, string>, answer = "200 Connection Established") {
  const seen: Array<{ target: string; auth: string | null }> = [];
  const server: Server = createServer((client) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      const text = head.subarray(0, end).toString("latin1");
      const target = /^CONNECT (\S+) HTTP\/1\.1/.exec(text)?.[1] ?? "?";
      seen.push({ target, auth: /^Proxy-Authorization: (.*)$/im.exec(text)?.[1] ?? null });
      if (!answer.startsWith("200")) return void client.end(`HTTP/1.1 ${answer}\r\nContent-Length: 0\r\n\r\n`);
      const [host, port] = (resolve[target] ?? target).split(/:(?=\d+$)/);
      const upstream = connect({ host: host!.replace(/^\[|\]$/g, ""), port: Number(port) }, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.write(head.subarray(end + 4));
        client.pipe(upstream).pipe(client);
      });
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
    };
    client.on("data", onData);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { seen, port: (server.address() as AddressInfo).port, close: () => server.close() };
}

describe("egress.upstreamProxy (issue 16 item 7)", () => {
  it("allowed traffic goes out through the operator's proxy (CONNECT to the vetted address, with its credentials); refused traffic never reaches it; noProxy goes direct", async () => {
    const proxy = await upstreamProxy(up.resolve);
    const ca = join(dir, "corp-ca.pem");
    await using d = await startDaemon({
      config: { egress: { resolve: up.resolve, extraCaCerts: [ca], sandboxCaCerts: [ca], upstreamProxy: { url: `http://ops:s3cret@127.0.0.1:${proxy.port}`, noProxy: ["other.example.test"] } } },
      args: ["--warm-pool", "0"],
    });
    try {
      expect(d.logs()).toContain(`egress goes out through the upstream proxy 127.0.0.1:${proxy.port} (CONNECT by address; direct: other.example.test)`);
      await using sb = await Sandbox.create({ ...d.opts, allowNet: ["api.example.test", "other.example.test"], secrets: { KEY: { hosts: ["api.openai.com"], value: "sk-upstream-0123456789" } } });
      const code = (args: string) => `curl -sS -o /dev/null -w '%{http_code} ' ${args} 2>/dev/null;`;
      const out = await runBash(
        sb,
        [code("https://api.example.test/echo/up-tls"), code("http://api.example.test/echo/up-plain"), code("https://other.example.test/echo/up-direct"), code('-H "Authorization: Bearer $KEY" https://api.openai.com/echo/up-secret'), code("https://evil.example.test/"), "true"].join(" "),
      );
      expect(out.out).toBe("200 200 200 200 000 ");
      const auth = `Basic ${Buffer.from("ops:s3cret").toString("base64")}`;
      expect(proxy.seen).toEqual([
        { target: `127.0.0.1:${up.httpsPort}`, auth },
        { target: `127.0.0.1:${up.httpPort}`, auth },
        { target: `127.0.0.1:${up.httpsPort}`, auth },
      ]);
      // The secret was substituted on the proxy's own TLS, through the upstream proxy.
      expect(up.seen.find((r) => r.path === "/echo/up-secret")!.headers.authorization).toBe("Bearer sk-upstream-0123456789");
      expect(up.seen.find((r) => r.path === "/echo/up-direct")).toBeDefined();
    } finally {
      proxy.close();
    }
  });

  it("connectBy: name sends a name DNS resolved (a pinned one still goes by its address); an upstream proxy that refuses is a 502 naming it", async () => {
    const named = await upstreamProxy(up.resolve);
    const refusing = await upstreamProxy(up.resolve, "407 Proxy Authentication Required");
    // localhost resolves through DNS (the system resolver) to 127.0.0.1, which this daemon approves.
    await using a = await startDaemon({ config: { egress: { resolve: up.resolve, allowedRanges: ["127.0.0.0/8"], upstreamProxy: { url: `http://127.0.0.1:${named.port}`, connectBy: "name" } } }, args: ["--warm-pool", "0"] });
    await using b = await startDaemon({ config: { egress: { resolve: up.resolve, upstreamProxy: `http://127.0.0.1:${refusing.port}` } }, args: ["--warm-pool", "0"] });
    try {
      await using sa = await Sandbox.create({ ...a.opts, allowNet: [`localhost:${up.httpPort}`, "api.example.test"] });
      const curl = (url: string) => runBash(sa, `env -u NO_PROXY -u no_proxy curl -sS -o /dev/null -w '%{http_code}' --proxy http://127.0.0.1:3128 ${url}`);
      const byName = await curl(`http://localhost:${up.httpPort}/echo/by-name`);
      expect(byName.out, byName.err).toBe("200");
      expect((await curl("http://api.example.test/echo/pinned")).out).toBe("200");
      expect(named.seen.map((s) => s.target)).toEqual([`localhost:${up.httpPort}`, `127.0.0.1:${up.httpPort}`]);
      await using sb = await Sandbox.create({ ...b.opts, allowNet: ["api.example.test"] });
      const refused = await runBash(sb, "curl -sS -D - -o /dev/null http://api.example.test/echo/refused-upstream");
      expect(refused.out).toMatch(/^HTTP\/1\.1 502 /);
      expect(refused.out).toContain(`the upstream proxy 127.0.0.1:${refusing.port} refused CONNECT 127.0.0.1:${up.httpPort}: 407 Proxy Authentication Required`);
    } finally {
      named.close();
      refusing.close();
    }
  });

  it("a malformed upstreamProxy is refused at start, naming the key", async () => {
    await expect(startDaemon({ config: { egress: { upstreamProxy: "socks5://127.0.0.1:1080" } } })).rejects.toThrow("config.egress.upstreamProxy.url: only http:// proxies are supported (got socks5:)");
    await expect(startDaemon({ config: { egress: { upstreamProxy: { url: "http://127.0.0.1:3128", via: 1 } } } })).rejects.toThrow("config.egress.upstreamProxy: unknown key 'via' (known: url, noProxy, connectBy)");
  });
});
