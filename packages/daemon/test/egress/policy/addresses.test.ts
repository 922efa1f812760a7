import { networkInterfaces } from "node:os";
import { describe, expect, it } from "vitest";
import { localAddresses, parseApprovedRanges, vetAddress, type VetContext } from "../../../src/egress/policy/addresses.js";
import { AllowList } from "../../../src/egress/policy/allowlist.js";

/** A host whose own public address is 93.184.216.34, with the daemon's API on loopback. */
const ctx = (allowNet: string[] = [], over: Partial<VetContext> = {}): VetContext => ({
  allowedLiterals: AllowList.parse(allowNet).literals,
  hostAddresses: ["127.0.0.1", "::1", "93.184.216.34", "2606:2800:220:1::248"],
  daemonApi: { host: "127.0.0.1", port: 7070 },
  ...over,
});

describe("addresses in refused classes", () => {
  it.each([
    ["127.0.0.1", "loopback", "127.0.0.1 is a loopback address"],
    ["127.255.255.254", "loopback", "127.255.255.254 is a loopback address"],
    ["::1", "loopback", "::1 is the loopback address"],
    ["0.0.0.0", "unspecified", "0.0.0.0 is the unspecified address, which reaches this host"],
    ["::", "unspecified", ":: is the unspecified address, which reaches this host"],
    ["0.1.2.3", "reserved", "0.1.2.3 is in 0.0.0.0/8, reserved for 'this network'"],
    ["10.1.2.3", "private", "10.1.2.3 is a private address (RFC 1918)"],
    ["172.16.0.1", "private", "172.16.0.1 is a private address (RFC 1918)"],
    ["172.31.255.255", "private", "172.31.255.255 is a private address (RFC 1918)"],
    ["192.168.1.1", "private", "192.168.1.1 is a private address (RFC 1918)"],
    ["100.64.0.1", "private", "100.64.0.1 is a carrier-grade NAT shared address (RFC 6598)"],
    ["100.127.255.255", "private", "100.127.255.255 is a carrier-grade NAT shared address (RFC 6598)"],
    ["fc00::1", "private", "fc00::1 is a unique local address (fc00::/7)"],
    ["fd12:3456::1", "private", "fd12:3456::1 is a unique local address (fc00::/7)"],
    ["fec0::1", "private", "fec0::1 is a site-local address (deprecated, fec0::/10)"],
    ["169.254.0.1", "link-local", "169.254.0.1 is a link-local address"],
    ["fe80::1", "link-local", "fe80::1 is a link-local address"],
    ["febf::1", "link-local", "febf::1 is a link-local address"],
    ["169.254.169.254", "metadata", "169.254.169.254 is the cloud metadata service (AWS, GCP, Azure, OCI, DigitalOcean)"],
    ["169.254.170.2", "metadata", "169.254.170.2 is the AWS ECS task metadata service"],
    ["100.100.100.200", "metadata", "100.100.100.200 is the Alibaba Cloud metadata service"],
    ["fd00:ec2::254", "metadata", "fd00:ec2::254 is the AWS metadata service over IPv6"],
    ["fd20:ce::254", "metadata", "fd20:ce::254 is the Google Cloud metadata service over IPv6"],
    ["224.0.0.1", "multicast", "224.0.0.1 is a multicast address"],
    ["239.255.255.250", "multicast", "239.255.255.250 is a multicast address"],
    ["ff02::1", "multicast", "ff02::1 is a multicast address"],
    ["255.255.255.255", "broadcast", "255.255.255.255 is the broadcast address"],
    ["240.0.0.1", "reserved", "240.0.0.1 is reserved (240.0.0.0/4)"],
    ["192.0.0.8", "reserved", "192.0.0.8 is reserved for IETF protocol assignments (192.0.0.0/24)"],
    ["198.18.0.1", "reserved", "198.18.0.1 is reserved for benchmarking (198.18.0.0/15)"],
    ["192.0.2.1", "documentation", "192.0.2.1 is a documentation address (TEST-NET-1)"],
    ["198.51.100.1", "documentation", "198.51.100.1 is a documentation address (TEST-NET-2)"],
    ["203.0.113.1", "documentation", "203.0.113.1 is a documentation address (TEST-NET-3)"],
    ["2001:db8::1", "documentation", "2001:db8::1 is a documentation address (2001:db8::/32)"],
    ["100::1", "reserved", "100::1 is a discard-only address (100::/64)"],
    ["2001:0:4136:e378::1", "reserved", "2001:0:4136:e378::1 is a Teredo tunnel address (2001::/32)"],
    ["64:ff9b:1::a00:1", "private", "64:ff9b:1::a00:1 is a local-use NAT64 address (64:ff9b:1::/48)"],
    ["1::1", "reserved", "1::1 is outside the IPv6 global unicast block (2000::/3)"],
    // IPv6 spellings that reach an IPv4 address are judged by that address.
    ["::ffff:127.0.0.1", "loopback", "127.0.0.1 is a loopback address"],
    ["::ffff:7f00:1", "loopback", "127.0.0.1 is a loopback address"],
    ["::ffff:169.254.169.254", "metadata", "169.254.169.254 is the cloud metadata service (AWS, GCP, Azure, OCI, DigitalOcean)"],
    ["::ffff:0:7f00:1", "loopback", "::ffff:0:7f00:1 is the IPv4-translated form of 127.0.0.1, a loopback address"],
    ["::127.0.0.1", "loopback", "::7f00:1 is the IPv4-compatible form of 127.0.0.1, a loopback address"],
    ["64:ff9b::127.0.0.1", "loopback", "64:ff9b::7f00:1 is the NAT64 form of 127.0.0.1, a loopback address"],
    ["64:ff9b::a9fe:a9fe", "metadata", "64:ff9b::a9fe:a9fe is the NAT64 form of 169.254.169.254, the cloud metadata service (AWS, GCP, Azure, OCI, DigitalOcean)"],
    ["2002:7f00:1::1", "loopback", "2002:7f00:1::1 is the 6to4 form of 127.0.0.1, a loopback address"],
    ["2002:c0a8:101::", "private", "2002:c0a8:101:: is the 6to4 form of 192.168.1.1, a private address (RFC 1918)"],
    ["::8.8.8.8", "reserved", "::808:808 is a deprecated IPv4-compatible address"],
  ])("%s is refused as %s", (ip, kind, what) => {
    const address = what.split(" ")[0]!;
    const shown = address.includes(":") ? `[${address}]:80` : `${address}:80`;
    expect(vetAddress(ip, ctx(), 80)).toEqual({ allowed: false, kind, reason: `${what}; only an IP literal in allowNet (${shown}) can allow it` });
  });
});

describe("public addresses", () => {
  it.each(["8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255", "223.255.255.255", "2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"])(
    "%s is allowed without any allowNet literal",
    (ip) => {
      expect(vetAddress(ip, ctx(), 443)).toEqual({ allowed: true, via: "public" });
    },
  );

  it("refuses text that is not an address", () => {
    expect(vetAddress("127.1", ctx(), 80)).toMatchObject({ allowed: false, kind: "invalid" });
    expect(vetAddress("example.com", ctx(), 80)).toMatchObject({ allowed: false, kind: "invalid" });
    expect(vetAddress("fe80::1%eth0", ctx(), 80)).toMatchObject({ allowed: false, kind: "invalid" });
  });
});

describe("this host's own addresses", () => {
  it.each(["93.184.216.34", "2606:2800:220:1::248", "::ffff:93.184.216.34"])("%s is refused although it is public", (ip) => {
    expect(vetAddress(ip, ctx(), 443)).toMatchObject({ allowed: false, kind: "host", reason: expect.stringMatching(/is one of this host's own addresses/) });
  });

  it("by default are read from the interfaces at the time of the call", () => {
    const expected = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address));
    expect(localAddresses()).toEqual(expected);
    // With no hostAddresses given, every interface address on the API port is the daemon's API.
    for (const address of expected) {
      expect(vetAddress(address, { allowedLiterals: [{ address, port: null }], daemonApi: { host: "0.0.0.0", port: 7070 } }, 7070)).toMatchObject({ kind: "daemon-api" });
    }
  });
});

describe("an IP literal in allowNet that names exactly the address allows it", () => {
  it.each([
    [["127.0.0.1"], "127.0.0.1", 8080],
    [["127.0.0.1:8080"], "127.0.0.1", 8080],
    [["127.0.0.1"], "::ffff:127.0.0.1", 8080],
    [["[::1]:8080"], "0:0::1", 8080],
    [["10.0.0.5:5432"], "10.0.0.5", 5432],
    [["169.254.169.254"], "169.254.169.254", 80],
    [["[fd00:ec2::254]"], "fd00:ec2::254", 80],
    [["93.184.216.34"], "93.184.216.34", 443],
  ])("allowNet %j allows %s:%i", (allowNet, ip, port) => {
    expect(vetAddress(ip, ctx(allowNet), port)).toEqual({ allowed: true, via: "literal" });
  });

  it.each([
    [["127.0.0.1:8080"], "127.0.0.1", 8081],
    [["127.0.0.1"], "127.0.0.2", 80],
    [["127.0.0.1"], "::1", 80],
    [["[::1]"], "127.0.0.1", 80],
    [["localhost"], "127.0.0.1", 80],
    [["10.0.0.5"], "10.0.0.6", 80],
    [["[fd00:ec2::254]"], "169.254.169.254", 80],
    [["*.example.com", "example.com"], "169.254.169.254", 80],
  ])("allowNet %j does not allow %s:%i", (allowNet, ip, port) => {
    expect(vetAddress(ip, ctx(allowNet), port).allowed).toBe(false);
  });
});

describe("the daemon's own API is never reachable, not even through an allowNet literal", () => {
  it.each([
    ["127.0.0.1", 7070, { host: "127.0.0.1", port: 7070 }],
    ["::ffff:127.0.0.1", 7070, { host: "127.0.0.1", port: 7070 }],
    ["127.0.0.2", 7070, { host: "127.0.0.1", port: 7070 }],
    ["::1", 7070, { host: "127.0.0.1", port: 7070 }],
    ["0.0.0.0", 7070, { host: "127.0.0.1", port: 7070 }],
    ["::", 7070, { host: "127.0.0.1", port: 7070 }],
    ["64:ff9b::7f00:1", 7070, { host: "127.0.0.1", port: 7070 }],
    ["93.184.216.34", 7070, { host: "0.0.0.0", port: 7070 }],
    ["2606:2800:220:1::248", 7070, { host: "[::]", port: 7070 }],
    ["10.9.9.9", 9000, { host: "10.9.9.9", port: 9000 }],
    ["127.0.0.1", 7070, { host: "localhost", port: 7070 }],
  ])("%s:%i with the API on %j", (ip, port, daemonApi) => {
    const verdict = vetAddress(ip, ctx([], { daemonApi, allowedLiterals: [{ address: ip, port: null }] }), port);
    expect(verdict).toMatchObject({ allowed: false, kind: "daemon-api", reason: expect.stringMatching(/is the sbx daemon's API, which sandboxes can never reach$/) });
  });

  it("other ports of the same addresses follow the usual rules", () => {
    expect(vetAddress("127.0.0.1", ctx(["127.0.0.1"]), 7071)).toEqual({ allowed: true, via: "literal" });
    expect(vetAddress("127.0.0.1", ctx(), 7071)).toMatchObject({ allowed: false, kind: "loopback" });
  });

  it("the API port on somebody else's public address is just a public address", () => {
    expect(vetAddress("8.8.8.8", ctx(), 7070)).toEqual({ allowed: true, via: "public" });
  });
});

describe("egress.allowedRanges: blocks the operator approved", () => {
  const approved = (ranges: string[]) => ctx([], { approvedRanges: parseApprovedRanges(ranges) });

  it("allows private, loopback and link-local addresses inside them, and nothing outside", () => {
    const c = approved(["10.20.0.0/16", "fd12:3456::/32"]);
    expect(vetAddress("10.20.1.5", c, 443)).toEqual({ allowed: true, via: "public" });
    expect(vetAddress("fd12:3456::1", c, 443)).toEqual({ allowed: true, via: "public" });
    expect(vetAddress("::ffff:10.20.1.5", c, 443)).toEqual({ allowed: true, via: "public" });
    expect(vetAddress("10.21.0.1", c, 443)).toMatchObject({ allowed: false, kind: "private" });
    expect(vetAddress("192.168.1.1", c, 443)).toMatchObject({ allowed: false, kind: "private" });
  });

  it("never approves metadata, multicast or the unspecified address, and never the daemon's API", () => {
    expect(() => parseApprovedRanges(["169.254.0.0/16"])).toThrow(/covers the cloud metadata address 169\.254\.169\.254/);
    expect(() => parseApprovedRanges(["0.0.0.0/0"])).toThrow(/covers the cloud metadata address/);
    expect(() => parseApprovedRanges(["fd00::/8"])).toThrow(/covers the cloud metadata address fd00:ec2::254/);
    expect(() => parseApprovedRanges(["10.0.0.0"])).toThrow(/is not a CIDR block/);
    expect(() => parseApprovedRanges(["10.0.0.0/33"])).toThrow(/is not a CIDR block/);
    const c = approved(["224.0.0.0/4", "127.0.0.0/8"]);
    expect(vetAddress("224.0.0.1", c, 80)).toMatchObject({ allowed: false, kind: "multicast" });
    expect(vetAddress("127.0.0.1", c, 7070)).toMatchObject({ allowed: false, kind: "daemon-api" });
    expect(vetAddress("127.0.0.1", c, 8080)).toEqual({ allowed: true, via: "public" });
  });
});
