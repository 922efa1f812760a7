import { describe, expect, it } from "vitest";
import { AllowList } from "../../../src/egress/policy/allowlist.js";
import { decideEgress, stillAllowed, type DecideOptions } from "../../../src/egress/policy/policy.js";
import { ResolveMap } from "../../../src/egress/policy/resolve-map.js";
import type { Lookup } from "../../../src/egress/policy/resolve.js";
import { parseAbsoluteUri, parseConnectTarget } from "../../../src/egress/policy/target.js";

const records: Record<string, string[]> = {
  "example.com": ["93.184.215.14"],
  "api.example.com": ["93.184.215.15"],
  "rebind.example.com": ["127.0.0.1"],
  "db.example.com": ["10.0.0.5"],
};
const lookup: Lookup = async (name) => {
  const addrs = records[name];
  if (!addrs) throw Object.assign(new Error("ENOTFOUND"), { code: "ENOTFOUND" });
  return addrs.map((address) => ({ address, family: 4 }));
};
const opts: DecideOptions = {
  hostAddresses: ["127.0.0.1", "::1"],
  daemonApi: { host: "127.0.0.1", port: 7070 },
  pins: ResolveMap.parse({ "upstream.test": "127.0.0.1" }),
  lookup,
};

describe("the whole decision, in order: allowNet, then resolution and vetting", () => {
  const list = AllowList.parse(["example.com", "*.example.com", "upstream.test:443", "127.0.0.1:8080", "nowhere.example.org"]);

  it.each([
    ["example.com:443", "example.com", "93.184.215.14", 443, "dns"],
    ["api.example.com:443", "*.example.com", "93.184.215.15", 443, "dns"],
    ["upstream.test:443", "upstream.test:443", "127.0.0.1", 443, "pin"],
    ["127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1", 8080, "literal"],
    ["127.1:8080", "127.0.0.1:8080", "127.0.0.1", 8080, "literal"],
    ["0x7f.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1", 8080, "literal"],
    ["[::ffff:127.0.0.1]:8080", "127.0.0.1:8080", "127.0.0.1", 8080, "literal"],
  ])("%s is allowed by %j and dialled at %s:%i (%s)", async (target, entry, address, port, via) => {
    const d = await decideEgress(parseConnectTarget(target), list, opts);
    expect(d).toMatchObject({ allowed: true, address, port, via });
    expect(d.allowed && d.entry.text).toBe(entry);
  });

  it.each([
    ["evil.test:443", 403, "not-allowed", "evil.test:443 is not in allowNet"],
    ["127.0.0.1:22", 403, "not-allowed", "127.0.0.1:22 is not in allowNet: it is allowed only on port 8080"],
    ["2130706433:22", 403, "not-allowed", "127.0.0.1:22 is not in allowNet: it is allowed only on port 8080"],
    ["169.254.169.254:80", 403, "not-allowed", "169.254.169.254:80 is not in allowNet"],
    ["rebind.example.com:443", 403, "loopback", "rebind.example.com resolves to a refused address: 127.0.0.1 is a loopback address; only an IP literal in allowNet (127.0.0.1:443) can allow it"],
    ["db.example.com:5432", 403, "private", "db.example.com resolves to a refused address: 10.0.0.5 is a private address (RFC 1918); only an IP literal in allowNet (10.0.0.5:5432) can allow it"],
    ["nowhere.example.org:443", 502, "unresolved", "nowhere.example.org does not resolve (ENOTFOUND)"],
  ])("%s is refused with %i (%s): %s", async (target, status, kind, reason) => {
    expect(await decideEgress(parseConnectTarget(target), list, opts)).toEqual({ allowed: false, status, kind, reason });
  });

  it("a name pinned to loopback without a port is reachable only on a port allowNet names", async () => {
    const anyPort = AllowList.parse(["upstream.test"]);
    expect(await decideEgress(parseConnectTarget("upstream.test:22"), anyPort, opts)).toMatchObject({ allowed: false, status: 403, kind: "loopback" });
  });

  it("a plain HTTP request's absolute URI goes through the same decision", async () => {
    expect(await decideEgress(parseAbsoluteUri("http://Example.COM./index.html"), list, opts)).toMatchObject({ allowed: true, address: "93.184.215.14", port: 80 });
    expect(await decideEgress(parseAbsoluteUri("http://127.1/"), list, opts)).toMatchObject({ allowed: false, status: 403, kind: "not-allowed" });
  });

  it("the daemon's API stays refused with every entry naming it", async () => {
    const all = AllowList.parse(["127.0.0.1:7070", "upstream.test"]);
    expect(await decideEgress(parseConnectTarget("127.0.0.1:7070"), all, opts)).toMatchObject({ allowed: false, status: 403, kind: "daemon-api" });
    expect(await decideEgress(parseConnectTarget("upstream.test:7070"), all, opts)).toMatchObject({ allowed: false, status: 403, kind: "daemon-api" });
  });
});

describe("after allowNet changes, open connections are re-judged without resolving again", () => {
  const ctx = { hostAddresses: opts.hostAddresses, daemonApi: opts.daemonApi };
  const example = { target: parseConnectTarget("example.com:443"), dialled: { address: "93.184.215.14", port: 443, via: "dns" as const } };
  const literal = { target: parseConnectTarget("127.0.0.1:8080"), dialled: { address: "127.0.0.1", port: 8080, via: "literal" as const } };
  const pinned = { target: parseConnectTarget("upstream.test:443"), dialled: { address: "127.0.0.1", port: 443, via: "pin" as const } };
  const db = { target: parseConnectTarget("db.example.com:5432"), dialled: { address: "10.0.0.5", port: 5432, via: "dns" as const } };

  it.each([
    [["example.com"], example, true],
    [["*.com.example.org"], example, false],
    [["example.com:80"], example, false],
    [["127.0.0.1"], literal, true],
    [["127.0.0.1:8081"], literal, false],
    [["upstream.test"], pinned, true],
    [["example.com"], pinned, false],
    [["db.example.com", "10.0.0.5"], db, true],
    [["db.example.com"], db, false],
  ])("with allowNet %j: %j stays allowed = %s", (allowNet, conn, expected) => {
    expect(stillAllowed(conn.target, conn.dialled, AllowList.parse(allowNet), ctx)).toBe(expected);
  });
});

describe("namesHost: whether an entry names a host on any port (the hosts a secret is bound to)", () => {
  it("matches names, wildcards over parents and literals whatever the entry's port, and nothing else", () => {
    const list = AllowList.parse(["api.example.com:443", "*.svc.test", "10.0.0.1:8080"]);
    expect(["api.example.com", "a.svc.test", "b.a.svc.test", "10.0.0.1"].map((h) => list.namesHost(h))).toEqual([true, true, true, true]);
    expect(["example.com", "svc.test", "api.example.com.evil.test", "10.0.0.2"].map((h) => list.namesHost(h))).toEqual([false, false, false, false]);
  });
});
