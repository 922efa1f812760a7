import { describe, expect, it } from "vitest";
import { AllowList, parseAllowEntry } from "../../../src/egress/policy/allowlist.js";
import { AllowNetError } from "../../../src/egress/policy/errors.js";

describe("allowNet entries that are accepted, and what they normalise to", () => {
  it.each([
    ["example.com", "name", "example.com", null],
    ["Example.COM", "name", "example.com", null],
    ["example.com.", "name", "example.com", null],
    ["example.com:443", "name", "example.com", 443],
    ["EXAMPLE.com.:8443", "name", "example.com", 8443],
    ["localhost", "name", "localhost", null],
    ["my_host.internal:1", "name", "my_host.internal", 1],
    ["Bücher.de", "name", "xn--bcher-kva.de", null],
    ["xn--bcher-kva.de:65535", "name", "xn--bcher-kva.de", 65535],
    ["*.example.com", "wildcard", "example.com", null],
    ["*.Example.COM.:443", "wildcard", "example.com", 443],
    ["*.bücher.de", "wildcard", "xn--bcher-kva.de", null],
    ["*.example.co.uk", "wildcard", "example.co.uk", null],
    ["*.me.github.io", "wildcard", "me.github.io", null],
    ["127.0.0.1", "ipv4", "127.0.0.1", null],
    ["10.0.0.1:5432", "ipv4", "10.0.0.1", 5432],
    ["169.254.169.254", "ipv4", "169.254.169.254", null],
    ["[::1]", "ipv6", "::1", null],
    ["[::1]:8080", "ipv6", "::1", 8080],
    ["[2001:DB8:0:0:0:0:0:1]", "ipv6", "2001:db8::1", null],
    ["[fd00:ec2::254]:80", "ipv6", "fd00:ec2::254", 80],
  ])("%j is a %s entry for %s port %s", (text, kind, host, port) => {
    expect(parseAllowEntry(text)).toEqual({ text, kind, host, port });
  });
});

describe("allowNet entries that are refused, each with the reason naming the entry", () => {
  it.each([
    ["", /is empty/],
    ["exa\0mple.com", /contains a NUL byte/],
    ["example.com\0.evil.test", /contains a NUL byte/],
    ["example.com%00.evil.test", /contains '%'/],
    ["%65xample.com", /contains '%'/],
    ["*", /would allow every host/],
    ["*:443", /would allow every host/],
    ["*.com", /wildcard over the public suffix "com"/],
    ["*.COM.", /wildcard over the public suffix "com"/],
    ["*.internal", /wildcard over the public suffix "internal"/],
    ["*.co.uk", /wildcard over the public suffix "co.uk"/],
    ["*.com.au:443", /wildcard over the public suffix "com.au"/],
    ["*.github.io", /wildcard over the public suffix "github.io"/],
    ["*.s3.amazonaws.com", /wildcard over the public suffix "s3.amazonaws.com"/],
    ["*.*.example.com", /more than one '\*'/],
    ["*example.com", /only a whole first label/],
    ["api.*.example.com", /only a whole first label/],
    ["example.*", /only a whole first label/],
    ["*.127.0.0.1", /wildcard over an IP address/],
    ["*.[::1]", /without brackets/],
    ["*.", /empty host/],
    ["a..example.com", /empty label/],
    [".example.com", /empty label/],
    ["example.com..", /empty label/],
    ["example.com:0", /port "0"/],
    ["example.com:65536", /port "65536"/],
    ["example.com:99999", /port "99999"/],
    ["example.com:-1", /port "-1"/],
    ["example.com:+80", /port "\+80"/],
    ["example.com:80a", /port "80a"/],
    ["example.com:", /port ""/],
    ["example.com:1:2", /without brackets/],
    ["example .com", /whitespace/],
    [" example.com", /whitespace/],
    ["example.com\t", /whitespace/],
    ["exa\u200bmple.com", /invisible/],
    ["user@example.com", /contains '@'/],
    ["user:pw@example.com:443", /contains '@'/],
    ["https://example.com", /has a scheme; write the host alone, as in "example.com"/],
    ["http://example.com:8080/", /has a scheme; write the host alone, as in "example.com:8080"/],
    ["example.com/path", /path, query or fragment/],
    ["example.com?x", /path, query or fragment/],
    ["example.com#x", /path, query or fragment/],
    ["example.com\\x", /path, query or fragment/],
    ["exa!mple.com", /not allowed in a host name/],
    ["exa<mple.com", /neither a valid host name/],
    ["a".repeat(64) + ".com", /longer than 63/],
    ["xn--a.com", /neither a valid host name/],
    ["[::1", /without a closing '\]'/],
    ["[::1]x", /not a port/],
    ["[1::2::3]", /not a valid IPv6 address/],
    ["[12345::]", /not a valid IPv6 address/],
    ["[127.0.0.1]", /not a valid IPv6 address/],
    ["[::1]:0", /port "0"/],
    ["::1", /without brackets/],
    ["2001:db8::1:443", /without brackets/],
    ["[::]", /unspecified address/],
    ["0.0.0.0:80", /unspecified address/],
    ["256.0.0.1", /neither a valid host name nor an IPv4 address/],
    ["1.2.3.4.5", /neither a valid host name nor an IPv4 address/],
    ["example.123", /neither a valid host name nor an IPv4 address/],
    ["08.0.0.1", /neither a valid host name nor an IPv4 address/],
  ])("%j is refused: %s", (text, reason) => {
    const err = captureError(() => parseAllowEntry(text, 3));
    expect(err).toBeInstanceOf(AllowNetError);
    expect(err.entry).toBe(text);
    expect(err.index).toBe(3);
    expect(err.reason).toMatch(reason);
    expect(err.message).toBe(`allowNet entry ${JSON.stringify(text)} ${err.reason}`);
  });

  it.each([
    ["127.1", "127.0.0.1"],
    ["0x7f.0.0.1", "127.0.0.1"],
    ["0x7F000001", "127.0.0.1"],
    ["2130706433", "127.0.0.1"],
    ["2130706433:80", "127.0.0.1"],
    ["0177.0.0.1", "127.0.0.1"],
    ["010.0.0.1", "8.0.0.1"],
    ["10.0.0.01", "10.0.0.1"],
    ["1.2.3.4.", "1.2.3.4"],
    ["[::ffff:127.0.0.1]", "127.0.0.1"],
    ["[::ffff:7f00:1]:8080", "127.0.0.1"],
    ["[::ffff:169.254.169.254]", "169.254.169.254"],
  ])("the non-canonical IPv4 spelling %j is refused, telling the user to write %s", (text, canonical) => {
    const err = captureError(() => parseAllowEntry(text));
    expect(err.reason).toBe(
      `spells an IPv4 address in a non-canonical form (clients read it as ${canonical}); write it as four decimal numbers without leading zeros, such as ${canonical}`,
    );
  });

  it("AllowList.parse refuses the whole list for one bad entry, naming it and its position", () => {
    const err = captureError(() => AllowList.parse(["example.com", "*.com", "*.co.uk"]));
    expect(err).toMatchObject({ entry: "*.com", index: 1 });
  });
});

describe("matching a canonical target", () => {
  const list = AllowList.parse([
    "api.example.com:443",
    "*.cdn.example.net",
    "git.example.org",
    "10.0.0.5:5432",
    "[::1]:8080",
    "Bücher.de",
    "*.example.com:8443",
  ]);

  it.each([
    ["api.example.com", 443, "api.example.com:443"],
    ["a.cdn.example.net", 80, "*.cdn.example.net"],
    ["a.b.cdn.example.net", 443, "*.cdn.example.net"],
    ["git.example.org", 22, "git.example.org"],
    ["git.example.org", 65535, "git.example.org"],
    ["10.0.0.5", 5432, "10.0.0.5:5432"],
    ["::1", 8080, "[::1]:8080"],
    ["xn--bcher-kva.de", 443, "Bücher.de"],
    ["x.example.com", 8443, "*.example.com:8443"],
  ])("%s:%i is allowed by %j", (host, port, entry) => {
    const m = list.match(host, port);
    expect(m.allowed && m.entry.text).toBe(entry);
  });

  it.each([
    ["api.example.com", 80, "api.example.com:80 is not in allowNet: it is allowed only on ports 443, 8443"],
    ["cdn.example.net", 443, "cdn.example.net:443 is not in allowNet: *.cdn.example.net matches subdomains only, not cdn.example.net itself"],
    ["xcdn.example.net", 443, "xcdn.example.net:443 is not in allowNet"],
    ["a.cdn.example.net.evil.test", 443, "a.cdn.example.net.evil.test:443 is not in allowNet"],
    ["example.org", 443, "example.org:443 is not in allowNet"],
    ["sub.git.example.org", 443, "sub.git.example.org:443 is not in allowNet"],
    ["10.0.0.5", 5433, "10.0.0.5:5433 is not in allowNet: it is allowed only on port 5432"],
    ["10.0.0.6", 5432, "10.0.0.6:5432 is not in allowNet"],
    ["::1", 8081, "[::1]:8081 is not in allowNet: it is allowed only on port 8080"],
    ["127.0.0.1", 8080, "127.0.0.1:8080 is not in allowNet"],
    ["x.example.com", 443, "x.example.com:443 is not in allowNet: it is allowed only on port 8443"],
  ])("%s:%i is refused: %s", (host, port, reason) => {
    expect(list.match(host, port)).toEqual({ allowed: false, reason });
  });

  it("an address matches only IP literals, never a name or wildcard that might resolve to it", () => {
    const byName = AllowList.parse(["localhost", "*.1.0.0.127.in-addr.arpa"]);
    expect(byName.match("127.0.0.1", 80).allowed).toBe(false);
    expect(byName.match("::1", 80).allowed).toBe(false);
  });

  it("an IPv4 literal also allows the IPv4-mapped IPv6 spelling of the same address", () => {
    expect(AllowList.parse(["127.0.0.1"]).match("::ffff:7f00:1", 80).allowed).toBe(true);
  });

  it("an empty list allows nothing", () => {
    expect(AllowList.parse([]).match("example.com", 443)).toEqual({ allowed: false, reason: "example.com:443 is not in allowNet" });
  });

  it("exposes its IP literals for address vetting", () => {
    expect(list.literals).toEqual([
      { address: "10.0.0.5", port: 5432 },
      { address: "::1", port: 8080 },
    ]);
  });
});

function captureError(fn: () => unknown): AllowNetError {
  try {
    fn();
  } catch (err) {
    return err as AllowNetError;
  }
  throw new Error("expected an error");
}
