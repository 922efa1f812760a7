import { describe, expect, it } from "vitest";
import { TargetError } from "../../../src/egress/policy/errors.js";
import { hostHeaderAgrees, parseAbsoluteUri, parseAuthority, parseConnectTarget, sniAgrees } from "../../../src/egress/policy/target.js";

describe("CONNECT targets are canonicalised the way clients read them", () => {
  it.each([
    ["example.com:443", "example.com", "name", 443],
    ["EXAMPLE.Com.:443", "example.com", "name", 443],
    ["Bücher.de:443", "xn--bcher-kva.de", "name", 443],
    ["ｅｘａｍｐｌｅ.com:443", "example.com", "name", 443],
    ["example。com:443", "example.com", "name", 443],
    ["example.com:00443", "example.com", "name", 443],
    ["_acme.exa_mple.com:443", "_acme.exa_mple.com", "name", 443],
    ["127.0.0.1:80", "127.0.0.1", "ipv4", 80],
    ["127.1:80", "127.0.0.1", "ipv4", 80],
    ["127.0.1:80", "127.0.0.1", "ipv4", 80],
    ["0x7f.0.0.1:80", "127.0.0.1", "ipv4", 80],
    ["0x7F.1:80", "127.0.0.1", "ipv4", 80],
    ["0177.0.0.1:80", "127.0.0.1", "ipv4", 80],
    ["2130706433:80", "127.0.0.1", "ipv4", 80],
    ["0x7f000001:80", "127.0.0.1", "ipv4", 80],
    ["127.0.0.1.:80", "127.0.0.1", "ipv4", 80],
    ["0:80", "0.0.0.0", "ipv4", 80],
    ["0x.0:80", "0.0.0.0", "ipv4", 80],
    ["2852039166:80", "169.254.169.254", "ipv4", 80],
    ["[::ffff:127.0.0.1]:443", "127.0.0.1", "ipv4", 443],
    ["[::ffff:7f00:1]:443", "127.0.0.1", "ipv4", 443],
    ["[::FFFF:a9fe:a9fe]:80", "169.254.169.254", "ipv4", 80],
    ["[::1]:8080", "::1", "ipv6", 8080],
    ["[0:0:0:0:0:0:0:1]:8080", "::1", "ipv6", 8080],
    ["[::127.0.0.1]:80", "::7f00:1", "ipv6", 80],
    ["[64:ff9b::127.0.0.1]:80", "64:ff9b::7f00:1", "ipv6", 80],
    ["[FD00:EC2::254]:80", "fd00:ec2::254", "ipv6", 80],
  ])("%j is %s (%s) port %i", (target, host, kind, port) => {
    expect(parseConnectTarget(target)).toEqual({ host, kind, port });
  });
});

describe("malformed CONNECT targets are refused with a reason", () => {
  it.each([
    ["example.com", /has no port/],
    ["[::1]", /has no port/],
    ["", /is empty/],
    [":443", /empty host/],
    ["[]:443", /not a valid IPv6 address/],
    ["user@example.com:443", /contains '@'/],
    ["user:pass@example.com:443", /contains '@'/],
    ["example.com@evil.test:443", /contains '@'/],
    ["exa\0mple.com:443", /NUL byte/],
    ["example.com%00.evil.test:443", /contains '%'/],
    ["%31%32%37.0.0.1:80", /contains '%'/],
    ["[fe80::1%25eth0]:80", /contains '%'/],
    ["example.com:0", /port "0"/],
    ["example.com:65536", /port "65536"/],
    ["example.com:-443", /port "-443"/],
    ["example.com:0x1bb", /port "0x1bb"/],
    ["example.com:443 ", /whitespace/],
    ["exa\tmple.com:443", /whitespace/],
    ["exa\nmple.com:443", /whitespace/],
    ["exa\u00admple.com:443", /invisible/],
    ["example.com:443/", /path, query or fragment/],
    ["example.com\\@evil.test:443", /contains '@'/],
    ["example.com#.evil.test:443", /path, query or fragment/],
    ["https://example.com:443", /has a scheme/],
    ["::1:443", /without brackets/],
    ["[::1:443", /without a closing/],
    ["[::1]443", /not a port/],
    ["a..b:443", /empty label/],
    ["*.example.com:443", /not allowed in a host name in "\*"/],
    ["256.0.0.1:80", /neither a valid host name nor an IPv4 address/],
    ["4294967296:80", /neither a valid host name nor an IPv4 address/],
    ["example.123:80", /neither a valid host name nor an IPv4 address/],
    ["xn--a.com:443", /neither a valid host name/],
  ])("%j: %s", (target, reason) => {
    let err: unknown;
    try {
      parseConnectTarget(target);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TargetError);
    expect((err as TargetError).target).toBe(target);
    expect((err as TargetError).reason).toMatch(reason);
    expect((err as TargetError).message).toBe(`target ${JSON.stringify(target)} ${(err as TargetError).reason}`);
  });

  it("an authority read with a default port takes it when there is none", () => {
    expect(parseAuthority("example.com", 80)).toEqual({ host: "example.com", kind: "name", port: 80 });
    expect(parseAuthority("example.com:8080", 80).port).toBe(8080);
  });
});

describe("absolute-URI requests of a plain HTTP proxy", () => {
  it.each([
    ["http://example.com/", "http", "example.com", 80, "/"],
    ["http://example.com", "http", "example.com", 80, "/"],
    ["HTTP://Example.COM:8080/a/b?c=d", "http", "example.com", 8080, "/a/b?c=d"],
    ["https://example.com/x", "https", "example.com", 443, "/x"],
    ["http://example.com?q=1", "http", "example.com", 80, "/?q=1"],
    ["http://example.com/p#frag", "http", "example.com", 80, "/p"],
    ["http://127.1/", "http", "127.0.0.1", 80, "/"],
    ["http://2130706433:8080/", "http", "127.0.0.1", 8080, "/"],
    ["http://[::ffff:127.0.0.1]/", "http", "127.0.0.1", 80, "/"],
    ["http://[::1]:3000/x", "http", "::1", 3000, "/x"],
  ])("%j goes to %s://%s:%i%s", (uri, scheme, host, port, path) => {
    expect(parseAbsoluteUri(uri)).toMatchObject({ scheme, host, port, path });
  });

  it.each([
    ["/relative/path", /not an absolute http/],
    ["ftp://example.com/", /not an absolute http/],
    ["http:/example.com/", /not an absolute http/],
    ["http:///path", /is empty/],
    ["http://user:pw@example.com/", /contains '@'/],
    ["http://example.com%2F@evil.test/", /contains '%'/],
    ["http://example.com:0/", /port "0"/],
    ["http://example.com/a b", /whitespace or a control character in its path/],
    ["http://example.com/a\0", /whitespace or a control character in its path/],
  ])("%j is refused: %s", (uri, reason) => {
    expect(() => parseAbsoluteUri(uri)).toThrow(TargetError);
    expect(() => parseAbsoluteUri(uri)).toThrow(reason);
  });
});

describe("a Host header or SNI that disagrees with the target", () => {
  const connect = parseConnectTarget("example.com:443");
  const plain = parseAbsoluteUri("http://example.com/");
  const literal = parseConnectTarget("127.0.0.1:8080");

  it.each([
    ["example.com:443", connect, 443, true],
    ["example.com", connect, 443, true],
    ["EXAMPLE.com.:443", connect, 443, true],
    [" example.com ", connect, 443, true],
    ["example.com", plain, 80, true],
    ["example.com:80", plain, 80, true],
    ["127.1:8080", literal, 443, true],
    ["evil.test:443", connect, 443, false],
    ["example.com:8443", connect, 443, false],
    ["example.com", parseAbsoluteUri("http://example.com:8080/"), 80, false],
    ["example.com.evil.test", connect, 443, false],
    ["evil.test@example.com", connect, 443, false],
    ["", connect, 443, false],
    ["example.com, evil.test", connect, 443, false],
  ])("Host %j against %j (default port %i) agrees: %s", (header, target, defaultPort, agrees) => {
    expect(hostHeaderAgrees(header, target, defaultPort)).toBe(agrees);
  });

  it.each([
    [undefined, connect, true],
    ["", literal, true],
    ["example.com", connect, true],
    ["Example.COM.", connect, true],
    ["evil.test", connect, false],
    ["example.com:443", connect, false],
    ["example.com\0.evil.test", connect, false],
    ["example.com", literal, false],
  ])("SNI %j against %j agrees: %s", (sni, target, agrees) => {
    expect(sniAgrees(sni, target)).toBe(agrees);
  });
});
