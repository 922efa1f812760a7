import { describe, expect, it } from "vitest";
import type { VetContext } from "../../../src/egress/policy/addresses.js";
import { AllowList } from "../../../src/egress/policy/allowlist.js";
import { ResolveMapError } from "../../../src/egress/policy/errors.js";
import { ResolveMap } from "../../../src/egress/policy/resolve-map.js";
import { resolveTarget, type Lookup, type ResolveOptions } from "../../../src/egress/policy/resolve.js";
import { parseConnectTarget } from "../../../src/egress/policy/target.js";

/** A resolver over a fixed zone that counts its queries; unknown names fail as getaddrinfo does. */
function zone(records: Record<string, string[]>): Lookup & { queries: string[] } {
  const queries: string[] = [];
  const lookup = async (name: string) => {
    queries.push(name);
    const addrs = records[name];
    if (!addrs) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: "ENOTFOUND" });
    return addrs.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return Object.assign(lookup, { queries });
}

const dns = () =>
  zone({
    "example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "rebind.test": ["93.184.215.14", "127.0.0.1"],
    "loopback.test": ["127.0.0.1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "metadata6.test": ["fd00:ec2::254"],
    "private.test": ["10.0.0.5"],
    "self.test": ["198.41.0.4"],
    "api.test": ["127.0.0.1"],
    "empty.test": [],
  });

function opts(over: Partial<ResolveOptions> & { allowNet?: string[] } = {}): ResolveOptions {
  return {
    allowedLiterals: AllowList.parse(over.allowNet ?? []).literals,
    hostAddresses: ["127.0.0.1", "::1", "198.41.0.4"],
    daemonApi: { host: "127.0.0.1", port: 7070 },
    lookup: dns(),
    ...over,
  };
}

const resolve = (target: string, o: ResolveOptions = opts()) => resolveTarget(parseConnectTarget(target), o);

describe("names are resolved once and every address is vetted", () => {
  it("dials the first address of a public name, having asked the resolver once", async () => {
    const lookup = dns();
    expect(await resolve("example.com:443", opts({ lookup }))).toEqual({
      allowed: true,
      address: "93.184.215.14",
      port: 443,
      addresses: ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
      via: "dns",
    });
    expect(lookup.queries).toEqual(["example.com"]);
  });

  it.each([
    ["rebind.test:443", "loopback", "rebind.test resolves to a refused address: 127.0.0.1 is a loopback address; only an IP literal in allowNet (127.0.0.1:443) can allow it"],
    ["loopback.test:80", "loopback", "loopback.test resolves to a refused address: 127.0.0.1 is a loopback address; only an IP literal in allowNet (127.0.0.1:80) can allow it"],
    ["mapped.test:80", "loopback", "mapped.test resolves to a refused address: 127.0.0.1 is a loopback address; only an IP literal in allowNet (127.0.0.1:80) can allow it"],
    ["metadata.test:80", "metadata", "metadata.test resolves to a refused address: 169.254.169.254 is the cloud metadata service (AWS, GCP, Azure, OCI, DigitalOcean); only an IP literal in allowNet (169.254.169.254:80) can allow it"],
    ["metadata6.test:80", "metadata", "metadata6.test resolves to a refused address: fd00:ec2::254 is the AWS metadata service over IPv6; only an IP literal in allowNet ([fd00:ec2::254]:80) can allow it"],
    ["private.test:5432", "private", "private.test resolves to a refused address: 10.0.0.5 is a private address (RFC 1918); only an IP literal in allowNet (10.0.0.5:5432) can allow it"],
    ["self.test:22", "host", "self.test resolves to a refused address: 198.41.0.4 is one of this host's own addresses; only an IP literal in allowNet (198.41.0.4:22) can allow it"],
    ["api.test:7070", "daemon-api", "api.test resolves to a refused address: 127.0.0.1:7070 is the sbx daemon's API, which sandboxes can never reach"],
  ])("%s is refused (DNS rebinding): %s", async (target, kind, reason) => {
    expect(await resolve(target)).toEqual({ allowed: false, kind, reason });
  });

  it("a name resolving to a refused address is allowed when an IP literal in allowNet names that address", async () => {
    expect(await resolve("private.test:5432", opts({ allowNet: ["private.test", "10.0.0.5:5432"] }))).toMatchObject({ allowed: true, address: "10.0.0.5", via: "dns" });
    expect(await resolve("private.test:5433", opts({ allowNet: ["private.test", "10.0.0.5:5432"] }))).toMatchObject({ allowed: false, kind: "private" });
    expect(await resolve("api.test:7070", opts({ allowNet: ["127.0.0.1"] }))).toMatchObject({ allowed: false, kind: "daemon-api" });
  });

  it.each([
    ["nowhere.test:443", "nowhere.test does not resolve (ENOTFOUND)"],
    ["empty.test:443", "empty.test resolves to no address"],
  ])("%s is unresolved: %s", async (target, reason) => {
    expect(await resolve(target)).toEqual({ allowed: false, kind: "unresolved", reason });
  });

  it("the real system resolver is used by default, and localhost is refused through it", async () => {
    const { lookup: _unused, ...withoutLookup } = opts();
    expect(await resolve("localhost:80", withoutLookup)).toMatchObject({ allowed: false, kind: "loopback", reason: expect.stringMatching(/^localhost resolves to a refused address: (127\.0\.0\.1|::1) is/) });
  });

  it("an abort signal ends a lookup that hangs", async () => {
    const controller = new AbortController();
    const pending = resolve("slow.test:443", opts({ lookup: () => new Promise(() => {}), signal: controller.signal }));
    controller.abort(new Error("lookup timed out"));
    await expect(pending).rejects.toThrow("lookup timed out");
    await expect(resolve("x.test:443", opts({ signal: controller.signal }))).rejects.toThrow("lookup timed out");
  });
});

describe("IP literal targets are vetted without any lookup", () => {
  it.each([
    ["127.1:80", { allowed: false, kind: "loopback" }],
    ["0x7f.0.0.1:80", { allowed: false, kind: "loopback" }],
    ["2130706433:80", { allowed: false, kind: "loopback" }],
    ["[::ffff:127.0.0.1]:80", { allowed: false, kind: "loopback" }],
    ["2852039166:80", { allowed: false, kind: "metadata" }],
    ["[::ffff:a9fe:a9fe]:80", { allowed: false, kind: "metadata" }],
    ["0:80", { allowed: false, kind: "unspecified" }],
    ["8.8.8.8:53", { allowed: true, address: "8.8.8.8", port: 53, via: "literal" }],
    ["[2606:4700:4700::1111]:443", { allowed: true, address: "2606:4700:4700::1111", via: "literal" }],
  ])("%s", async (target, expected) => {
    const lookup = dns();
    expect(await resolve(target, opts({ lookup }))).toMatchObject(expected);
    expect(lookup.queries).toEqual([]);
  });
});

describe("egress.resolve pins", () => {
  const pins = ResolveMap.parse({
    "Upstream.TEST.": "127.0.0.1",
    "upstream.test:443": "127.0.0.1:8443",
    "v6.test": "[::1]:9000",
    "private.test": "192.168.7.7",
    "api.test": "127.0.0.1",
    "Bücher.test:443": "127.0.0.1:8444",
  });

  it.each([
    ["upstream.test:80", "127.0.0.1", 80],
    ["upstream.test:443", "127.0.0.1", 8443],
    ["upstream.test.:443", "127.0.0.1", 8443],
    ["v6.test:443", "::1", 9000],
    ["private.test:5432", "192.168.7.7", 5432],
    ["xn--bcher-kva.test:443", "127.0.0.1", 8444],
    ["api.test:8080", "127.0.0.1", 8080],
  ])("%s is dialled at %s:%i, skipping the address classes and DNS", async (target, address, port) => {
    const lookup = dns();
    // allowNet names the port (a port-less pin to a loopback or private address needs one somewhere).
    const entryPort = Number(target.split(":").pop());
    expect(await resolve(target, opts({ pins, lookup, entryPort }))).toEqual({ allowed: true, address, port, addresses: [address], via: "pin" });
    expect(lookup.queries).toEqual([]);
  });

  it("a port-less pin to a loopback or private address, matched by a port-less allowNet entry, opens no port (resilience item 13)", async () => {
    expect(await resolve("upstream.test:22", opts({ pins, entryPort: null }))).toEqual({
      allowed: false,
      kind: "loopback",
      reason: "upstream.test is pinned by egress.resolve to 127.0.0.1 (a loopback address) without a port, and its allowNet entry names none: name the port in allowNet (upstream.test:22) or in the pin",
    });
    expect(await resolve("private.test:5432", opts({ pins, entryPort: null }))).toMatchObject({ allowed: false, kind: "private" });
    // A pin that names the port, an entry that names it, or a public address: allowed as before.
    expect(await resolve("upstream.test:443", opts({ pins, entryPort: null }))).toMatchObject({ allowed: true, port: 8443 });
    expect(await resolve("upstream.test:22", opts({ pins, entryPort: 22 }))).toMatchObject({ allowed: true, port: 22 });
    const pub = ResolveMap.parse({ "pub.test": "93.184.215.14" });
    expect(await resolve("pub.test:8443", opts({ pins: pub, entryPort: null }))).toMatchObject({ allowed: true, address: "93.184.215.14", port: 8443 });
  });

  it("a pin never reaches the daemon's API", async () => {
    expect(await resolve("api.test:7070", opts({ pins }))).toEqual({
      allowed: false,
      kind: "daemon-api",
      reason: "api.test is pinned by egress.resolve to 127.0.0.1:7070 is the sbx daemon's API, which sandboxes can never reach",
    });
    const toApi = ResolveMap.parse({ "sneaky.test:443": "127.0.0.1:7070" });
    expect(await resolve("sneaky.test:443", opts({ pins: toApi }))).toMatchObject({ allowed: false, kind: "daemon-api" });
  });

  it("names without a pin, other ports of a port-only pin, and IP targets go through the usual path", async () => {
    const only443 = ResolveMap.parse({ "example.com:443": "127.0.0.1:8443" });
    expect(await resolve("example.com:80", opts({ pins: only443 }))).toMatchObject({ allowed: true, address: "93.184.215.14", via: "dns" });
    expect(await resolve("127.0.0.1:80", opts({ pins }))).toMatchObject({ allowed: false, kind: "loopback" });
  });

  it("reads --resolve flags", () => {
    const map = ResolveMap.fromFlags(["a.test:443=127.0.0.1:8443", "b.test=[::1]"]);
    expect(map.lookup("a.test", 443)).toEqual({ address: "127.0.0.1", port: 8443, portFromPin: true });
    expect(map.lookup("a.test", 80)).toBeUndefined();
    expect(map.lookup("b.test", 80)).toEqual({ address: "::1", port: 80, portFromPin: false });
  });

  it.each([
    [{ "": "127.0.0.1" }, "", /is empty/],
    [{ "127.0.0.1": "10.0.0.1" }, "127.0.0.1", /pins an address; pins map host names/],
    [{ "a.test:0": "127.0.0.1" }, "a.test:0", /port "0"/],
    [{ "a.test": "b.test" }, "a.test", /maps to "b.test", which is a name; a pin maps to an IP address/],
    [{ "a.test": "127.1" }, "a.test", /which is not a canonical IPv4 address; write 127.0.0.1/],
    [{ "a.test": "127.0.0.1:99999" }, "a.test", /port "99999"/],
    [{ "a.test": "::1" }, "a.test", /without brackets/],
    [{ "a.test": "" }, "a.test", /which is empty/],
    [{ "a..test": "127.0.0.1" }, "a..test", /empty label/],
    [{ "user@a.test": "127.0.0.1" }, "user@a.test", /contains '@'/],
    [{ "A.test": "127.0.0.1", "a.test.": "127.0.0.2" }, "a.test.", /pins a.test a second time/],
  ])("the pins %j are refused, naming %j", (map, key, reason) => {
    let err: unknown;
    try {
      ResolveMap.parse(map);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ResolveMapError);
    expect(err).toMatchObject({ key, reason: expect.stringMatching(reason) });
  });

  it.each([
    [["a.test"], "a.test", /is not NAME\[:PORT\]=ADDR\[:PORT\]/],
    [["a.test=127.0.0.1", "a.test=127.0.0.2"], "a.test", /is given twice/],
  ])("the flags %j are refused", (flags, key, reason) => {
    expect(() => ResolveMap.fromFlags(flags)).toThrow(ResolveMapError);
    expect(() => ResolveMap.fromFlags(flags)).toThrow(reason);
  });
});

describe("ResolveMap.merge", () => {
  it("adds the flags' pins to the config file's, the flags winning for the same name", () => {
    const file = ResolveMap.parse({ "a.test": "127.0.0.1", "b.test:443": "127.0.0.2:8443" });
    const merged = file.merge(ResolveMap.fromFlags(["b.test:443=127.0.0.3:9443", "c.test=10.0.0.1"]));
    expect(merged.lookup("a.test", 80)).toEqual({ address: "127.0.0.1", port: 80, portFromPin: false });
    expect(merged.lookup("b.test", 443)).toEqual({ address: "127.0.0.3", port: 9443, portFromPin: true });
    expect(merged.lookup("c.test", 80)).toEqual({ address: "10.0.0.1", port: 80, portFromPin: false });
  });
});
