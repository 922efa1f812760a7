import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AllowList } from "../../../src/egress/policy/allowlist.js";
import { EgressJournal } from "../../../src/egress/proxy/journal.js";
import type { DecideOptions } from "../../../src/egress/policy/policy.js";
import { EgressProxy } from "../../../src/egress/proxy/proxy.js";
import { DEFAULT_BOUNDS, EgressShared, type EgressBounds } from "../../../src/egress/proxy/limits.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A proxy whose decisions throw (a name map that fails on every lookup), and what it reported. */
async function brokenProxy() {
  const dir = mkdtempSync(join(tmpdir(), "sbx-proxy-safety-"));
  dirs.push(dir);
  const failing = {
    lookup(): never {
      throw new TypeError("the name map failed");
    },
  };
  const proxy = new EgressProxy(AllowList.parse(["x.example.com"]), new EgressJournal(), { pins: failing } as unknown as DecideOptions, new EgressShared(DEFAULT_BOUNDS, () => []).forSandbox());
  const reported: string[] = [];
  proxy.onInternalError = (m) => reported.push(m);
  await proxy.listen(join(dir, "proxy.sock"));
  return { proxy, reported, path: join(dir, "proxy.sock") };
}

/** Sends `request` and resolves with whatever comes back before the proxy closes the connection. */
function exchange(path: string, request: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(path, () => s.write(request));
    let got = "";
    s.on("data", (d) => (got += d));
    s.on("close", () => resolve(got));
    s.on("error", () => {});
  });
}

describe("a failure inside the proxy's own handling", () => {
  it("closes that connection and is reported, and the proxy (and the daemon) carry on", async () => {
    const { proxy, reported, path } = await brokenProxy();
    try {
      expect(await exchange(path, "CONNECT x.example.com:443 HTTP/1.1\r\nHost: x.example.com:443\r\n\r\n")).toBe("");
      expect(await exchange(path, "GET http://x.example.com/ HTTP/1.1\r\nHost: x.example.com\r\n\r\n")).toBe("");
      expect(reported).toHaveLength(2);
      expect(reported).toEqual(["TypeError: the name map failed", "TypeError: the name map failed"]);
      // Still listening: a request it can refuse on its own is refused as usual.
      expect(await exchange(path, "CONNECT elsewhere.example.com:443 HTTP/1.1\r\n\r\n")).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    } finally {
      proxy.close();
    }
  });
});

/** A proxy of its own on a unix socket, with the given bounds, sharing `shared` if given. */
async function boundedProxy(bounds: Partial<EgressBounds>, shared = new EgressShared({ ...DEFAULT_BOUNDS, ...bounds }, () => []), allowNet: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), "sbx-proxy-bounds-"));
  dirs.push(dir);
  const proxy = new EgressProxy(AllowList.parse(allowNet), new EgressJournal(), { daemonApi: { host: "127.0.0.1", port: 1 } } as DecideOptions, shared.forSandbox());
  const bounded: string[] = [];
  proxy.onBound = (m) => bounded.push(m);
  await proxy.listen(join(dir, "proxy.sock"));
  return { proxy, bounded, shared, path: join(dir, "proxy.sock") };
}

/** Opens a connection and resolves once it is open; `closed` resolves with what it read before the proxy closed it. */
function open(path: string): Promise<{ socket: net.Socket; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    let got = "";
    socket.on("data", (d) => (got += d));
    const closed = new Promise<string>((r) => socket.on("close", () => r(got)));
    socket.once("connect", () => resolve({ socket, closed }));
    socket.once("error", reject);
  });
}

describe("what a sandbox's connections may cost the daemon (resilience item 2)", () => {
  it("past the per-sandbox cap a connection is answered 503 naming the bound; a freed one is reused", async () => {
    const { proxy, bounded, path } = await boundedProxy({ connectionsPerSandbox: 4 });
    try {
      const held = await Promise.all([1, 2, 3, 4].map(() => open(path)));
      const fifth = await open(path);
      expect(await fifth.closed).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*X-Sbx-Error: this sandbox has 4 open proxy connections, the most it may \(egress\.maxConnectionsPerSandbox\)/);
      expect(bounded).toHaveLength(1);
      held[0]!.socket.destroy();
      await held[0]!.closed;
      await new Promise((r) => setTimeout(r, 20));
      const again = await open(path);
      again.socket.write("CONNECT nowhere.example:443 HTTP/1.1\r\n\r\n");
      expect(await again.closed).toMatch(/^HTTP\/1\.1 403 Forbidden/);
      for (const h of held) h.socket.destroy();
    } finally {
      proxy.close();
    }
  });

  it("the daemon-wide cap holds over all sandboxes' proxies", async () => {
    const shared = new EgressShared({ ...DEFAULT_BOUNDS, connections: 3 }, () => []);
    const a = await boundedProxy({}, shared);
    const b = await boundedProxy({}, shared);
    try {
      const held = [await open(a.path), await open(a.path), await open(b.path)];
      expect(await (await open(b.path)).closed).toContain("X-Sbx-Error: the daemon has as many open proxy connections as it may over all sandboxes (egress.maxConnections); try again");
      expect(shared.connections.inUse).toBe(3);
      for (const h of held) h.socket.destroy();
      await Promise.all(held.map((h) => h.closed));
      await new Promise((r) => setTimeout(r, 20));
      expect(shared.connections.inUse).toBe(0);
    } finally {
      a.proxy.close();
      b.proxy.close();
    }
  });

  it("one token's sandboxes together get their token's share of the daemon's connections; another token's still connect", async () => {
    const shared = new EgressShared({ ...DEFAULT_BOUNDS, connections: 16, connectionsPerToken: 4 }, () => []);
    const [a1, a2, b] = [await boundedProxy({}, shared), await boundedProxy({}, shared), await boundedProxy({}, shared)];
    a1.proxy.setOwner("token-a");
    a2.proxy.setOwner("token-a");
    b.proxy.setOwner("token-b");
    try {
      const held = [await open(a1.path), await open(a1.path), await open(a2.path), await open(a2.path)];
      expect(await (await open(a2.path)).closed).toContain("X-Sbx-Error: this sandbox's token has 4 open proxy connections over its sandboxes, the most it may (egress.maxConnectionsPerToken)");
      expect(await (await open(a1.path)).closed).toContain("(egress.maxConnectionsPerToken)");
      const other = await open(b.path);
      other.socket.write("CONNECT nowhere.example:443 HTTP/1.1\r\n\r\n");
      expect(await other.closed).toMatch(/^HTTP\/1\.1 403 Forbidden/); // admitted, then judged by its allowNet
      expect(shared.forToken("token-a").inUse).toBe(4);
      for (const h of held) h.socket.destroy();
      await Promise.all(held.map((h) => h.closed));
      await new Promise((r) => setTimeout(r, 20));
      expect([shared.forToken("token-a").inUse, shared.connections.inUse]).toEqual([0, 0]);
    } finally {
      for (const p of [a1, a2, b]) p.proxy.close();
    }
  });

  it("without a setting, a token's share is a quarter of the daemon's connections (at least one sandbox's)", () => {
    expect(new EgressShared({ ...DEFAULT_BOUNDS, connections: 16384 }, () => []).forToken("t").limit).toBe(4096);
    expect(new EgressShared({ ...DEFAULT_BOUNDS, connections: 400, connectionsPerSandbox: 256 }, () => []).forToken("t").limit).toBe(256);
  });

  it("a tunnel that moves no byte for tunnelIdleTimeout is closed, and its connection given back; one in use is not", async () => {
    const upstream = net.createServer((s) => s.on("data", (d) => s.write(`echo ${d}`)));
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const port = (upstream.address() as net.AddressInfo).port;
    const bounds = { ...DEFAULT_BOUNDS, idleMs: 400 };
    const { proxy, path, shared } = await boundedProxy(bounds, new EgressShared(bounds, () => []), [`127.0.0.1:${port}`]);
    try {
      const idle = await open(path);
      const busy = await open(path);
      let got = "";
      busy.socket.on("data", (d) => (got += d));
      for (const t of [idle, busy]) t.socket.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`);
      const started = Date.now();
      // The busy one talks every 150 ms, for longer than the timeout.
      for (let i = 0; i < 6; i++) {
        await new Promise((r) => setTimeout(r, 150));
        busy.socket.write(`ping${i}`);
      }
      expect(await idle.closed).toBe("HTTP/1.1 200 Connection Established\r\n\r\n");
      expect(Date.now() - started).toBeGreaterThanOrEqual(350);
      await new Promise((r) => setTimeout(r, 50));
      expect(got).toContain("echo ping5");
      expect(busy.socket.destroyed).toBe(false);
      expect(shared.connections.inUse).toBe(1);
      busy.socket.destroy();
    } finally {
      proxy.close();
      upstream.close();
    }
  });

  it("a connection that sends no request is closed after firstRequestTimeout; one that sent a CONNECT is not", async () => {
    const upstream = net.createServer((s) => s.on("data", (d) => s.write(`echo ${d}`)));
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const port = (upstream.address() as net.AddressInfo).port;
    const bounds = { ...DEFAULT_BOUNDS, firstRequestMs: 200 };
    const { proxy, path } = await boundedProxy(bounds, new EgressShared(bounds, () => []), [`127.0.0.1:${port}`]);
    try {
      const tunnel = await open(path);
      let got = "";
      tunnel.socket.on("data", (d) => (got += d));
      tunnel.socket.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 500));
      tunnel.socket.write("still here");
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toBe("HTTP/1.1 200 Connection Established\r\n\r\necho still here");
      tunnel.socket.destroy();

      const silent = await open(path);
      const started = Date.now();
      expect(await silent.closed).toBe("");
      const waited = Date.now() - started;
      expect(waited).toBeGreaterThanOrEqual(150);
      expect(waited).toBeLessThan(3000);
      // Half a request line is no request either.
      const partial = await open(path);
      partial.socket.write("CONNECT x.exa");
      expect(await partial.closed).toBe("");
    } finally {
      proxy.close();
      upstream.close();
    }
  });
});
