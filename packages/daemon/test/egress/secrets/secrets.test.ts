import { inspect } from "node:util";
import type { Transform } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  MIN_VALUE_LENGTH,
  PLACEHOLDER_LENGTH,
  PLACEHOLDER_PREFIX,
  SecretBlocked,
  SecretSet,
  SecretSpecError,
  StreamReplacer,
  valueForms,
  type Destination,
  type SecretInput,
} from "../../../src/egress/secrets/secrets.js";

const https = (host: string, port = 443): Destination => ({ host, port, scheme: "https" });
const http = (host: string, port = 80): Destination => ({ host, port, scheme: "http" });

const API_KEY = "sk-live-Q7rT9xY2wZ4v";
const DB_PASSWORD = "hunter2-but-longer!";
const PLACEHOLDER_RE = /^SBX_SECRET_[0-9A-Za-z]{32}$/;

function twoSecrets(extra: Partial<Record<"API" | "DB", Partial<SecretInput>>> = {}) {
  const set = SecretSet.create({
    API: { hosts: ["api.example.com"], value: API_KEY, ...extra.API },
    DB: { hosts: ["db.example.org"], value: DB_PASSWORD, ...extra.DB },
  });
  return { set, api: set.env.API!, db: set.env.DB! };
}

function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a throw");
}

function blocked(fn: () => unknown): SecretBlocked {
  const err = caught(fn);
  expect(err).toBeInstanceOf(SecretBlocked);
  return err as SecretBlocked;
}

function expectNoValue(err: Error, ...values: string[]): void {
  for (const text of [err.message, String(err), inspect(err), JSON.stringify({ ...err }), err.stack ?? ""]) {
    for (const v of values) expect(text).not.toContain(v);
  }
}

const b64 = (s: string) => Buffer.from(s, "latin1").toString("base64");
const b64url = (s: string) => Buffer.from(s, "latin1").toString("base64url");

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomChunks(buf: Buffer, rand: () => number, maxChunk: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + Math.floor(rand() * maxChunk);
    chunks.push(buf.subarray(i, i + n));
    i += n;
  }
  return chunks;
}

const bytewise = (buf: Buffer) => [...buf].map((b) => Buffer.from([b]));
const splitAt = (buf: Buffer, k: number) => [buf.subarray(0, k), buf.subarray(k)];

interface Pumped {
  out: Buffer;
  error: Error | null;
}

/** Writes the chunks one at a time (each after the previous was taken), then ends the stream. */
async function pump(stream: Transform, chunks: readonly Buffer[], afterWrite?: (written: number, emitted: number) => void): Promise<Pumped> {
  const out: Buffer[] = [];
  let emitted = 0;
  stream.on("data", (c: Buffer) => {
    out.push(c);
    emitted += c.length;
  });
  const finished = new Promise<Error | null>((resolve) => {
    stream.once("end", () => resolve(null));
    stream.once("error", resolve);
  });
  let written = 0;
  for (const chunk of chunks) {
    if (stream.destroyed) break;
    await new Promise<void>((resolve) => stream.write(chunk, () => resolve()));
    written += chunk.length;
    if (afterWrite) {
      await new Promise((resolve) => setImmediate(resolve));
      afterWrite(written, emitted);
    }
  }
  if (!stream.destroyed) stream.end();
  const error = await finished;
  return { out: Buffer.concat(out), error };
}

/** Leftmost match wins, the longest at a tie; matches never overlap; replacements are not rescanned. */
function replaceAllReference(input: Buffer, patterns: readonly Buffer[], replacement: (i: number) => Buffer): Buffer {
  const out: Buffer[] = [];
  let from = 0;
  let i = 0;
  while (i < input.length) {
    let best = -1;
    patterns.forEach((p, j) => {
      if (i + p.length <= input.length && input.compare(p, 0, p.length, i, i + p.length) === 0 && (best === -1 || p.length > patterns[best]!.length)) best = j;
    });
    if (best === -1) {
      i++;
      continue;
    }
    out.push(input.subarray(from, i), replacement(best));
    i += patterns[best]!.length;
    from = i;
  }
  out.push(input.subarray(from));
  return Buffer.concat(out);
}

describe("placeholders", () => {
  it("are SBX_SECRET_ followed by 32 base62 characters, PLACEHOLDER_LENGTH long", () => {
    const { api, db } = twoSecrets();
    expect(PLACEHOLDER_PREFIX).toBe("SBX_SECRET_");
    expect(PLACEHOLDER_LENGTH).toBe(43);
    for (const p of [api, db]) {
      expect(p).toMatch(PLACEHOLDER_RE);
      expect(p).toHaveLength(PLACEHOLDER_LENGTH);
    }
  });

  it("are fresh for every create, even for identical specs", () => {
    const spec = { K: { hosts: ["api.example.com"], value: API_KEY } };
    expect(SecretSet.create(spec).env.K).not.toBe(SecretSet.create(spec).env.K);
  });

  it("are unique across many sets and use the whole base62 alphabet evenly", () => {
    const all: string[] = [];
    for (let i = 0; i < 500; i++) {
      const set = SecretSet.create({
        A: { hosts: ["a.example.com"], value: API_KEY },
        B: { hosts: ["b.example.com"], value: API_KEY },
        C: { hosts: ["c.example.com"], value: DB_PASSWORD },
        D: { hosts: ["d.example.com"], value: DB_PASSWORD },
      });
      all.push(...Object.values(set.env));
    }
    expect(new Set(all).size).toBe(all.length);
    const counts = new Map<string, number>();
    for (const p of all) for (const c of p.slice(PLACEHOLDER_PREFIX.length)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(62);
    const expected = (all.length * 32) / 62;
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan(expected * 0.7);
      expect(n).toBeLessThan(expected * 1.3);
    }
  });

  it("are the sandbox's environment, keyed by secret name in spec order", () => {
    const { set, api, db } = twoSecrets();
    expect(set.env).toEqual({ API: api, DB: db });
    expect(Object.keys(set.env)).toEqual(["API", "DB"]);
    expect(JSON.stringify(set.env)).not.toContain(API_KEY);
    expect(JSON.stringify(set.env)).not.toContain(DB_PASSWORD);
  });
});

describe("SecretSet.create accepts", () => {
  it("a value of exactly the minimum length", () => {
    expect(MIN_VALUE_LENGTH).toBe(8);
    expect(SecretSet.create({ K: { hosts: ["api.example.com"], value: "12345678" } }).secrets[0]!.value).toBe("12345678");
  });

  it("printable ASCII but for space and the characters encoders rewrite, including lower-case sbx_secret_", () => {
    const value = "!#$%()*+,-./09:;=?@AZ[]^_`az{|}~sbx_secret_xSBX_SECRET";
    expect(SecretSet.create({ K: { hosts: ["api.example.com"], value } }).secrets[0]!.value).toBe(value);
  });

  it.each([" ", '"', "\\", "<", ">", "&", "'"])("no value holding %j, which an encoder would rewrite out of scrubbing's sight", (c) => {
    expect(() => SecretSet.create({ K: { hosts: ["api.example.com"], value: `abcd${c}efgh` } })).toThrow(SecretSpecError);
  });

  it("names that are environment variable names, up to 128 characters", () => {
    const long = `_${"a".repeat(127)}`;
    const set = SecretSet.create({ _x: { hosts: ["a.example.com"], value: API_KEY }, [long]: { hosts: ["a.example.com"], value: API_KEY }, Z9_: { hosts: ["a.example.com"], value: API_KEY } });
    expect(Object.keys(set.env)).toEqual(["_x", long, "Z9_"]);
  });

  it("host names, wildcards and ports, and defaults body to false", () => {
    const set = SecretSet.create({ K: { hosts: ["API.Example.com.", "*.example.org", "upload.example.net:8443"], value: API_KEY } });
    const s = set.secrets[0]!;
    expect(s.body).toBe(false);
    expect(s.hosts.entries.map((e) => [e.kind, e.host, e.port])).toEqual([
      ["name", "api.example.com", null],
      ["wildcard", "example.org", null],
      ["name", "upload.example.net", 8443],
    ]);
    expect(SecretSet.create({ K: { hosts: ["a.example.com"], value: API_KEY, body: true } }).secrets[0]!.body).toBe(true);
  });

  it("an empty record as an empty set", () => {
    const set = SecretSet.create({});
    expect(set.empty).toBe(true);
    expect(set.env).toEqual({});
  });
});

describe("SecretSet.create refuses a bad value, naming the secret but never the value", () => {
  it.each([
    ["empty", ""],
    ["7 characters", "Zq9!x7w"],
    ["a CR LF (header injection)", "abcd1234\r\nX-Evil: 1"],
    ["a lone LF", "abcd1234\nzzzz"],
    ["a tab", "abcd\t1234"],
    ["a NUL", "abcd1234\0"],
    ["DEL", "abcd1234\x7f"],
    ["non-ASCII", "pässwörter-123"],
    ["an emoji", "token-🔑-12345"],
    ["SBX_SECRET_ in it", "prefix-SBX_SECRET_suffix"],
    ["another sandbox's whole placeholder", `SBX_SECRET_${"a".repeat(32)}`],
  ])("%s", (_what, value) => {
    const err = caught(() => SecretSet.create({ GOOD: { hosts: ["a.example.com"], value: API_KEY }, MY_KEY: { hosts: ["api.example.com"], value } }));
    expect(err).toBeInstanceOf(SecretSpecError);
    const spec = err as SecretSpecError;
    expect(spec.secret).toBe("MY_KEY");
    expect(spec.field).toBe("value");
    expect(spec.message).toMatch(/^secrets\.MY_KEY\.value /);
    if (value !== "") expectNoValue(err, value);
    expectNoValue(err, API_KEY);
  });

  it.each([
    ["undefined", undefined],
    ["a number", 1234567890],
    ["an array", ["abcdefgh"]],
  ])("that is %s, not a string", (_what, value) => {
    const err = caught(() => SecretSet.create({ K: { hosts: ["api.example.com"], value: value as unknown as string } }));
    expect(err).toBeInstanceOf(SecretSpecError);
    expect(err).toMatchObject({ secret: "K", field: "value" });
  });
});

describe("SecretSet.create refuses a bad name", () => {
  it.each([
    ["", ""],
    ["starting with a digit", "1KEY"],
    ["with a dash", "API-KEY"],
    ["with a space", "API KEY"],
    ["with a dot", "api.key"],
    ["non-ASCII", "SCHLÜSSEL"],
    ["129 characters", `K${"x".repeat(128)}`],
  ])("%s", (_what, name) => {
    const err = caught(() => SecretSet.create({ [name]: { hosts: ["api.example.com"], value: API_KEY } }));
    expect(err).toBeInstanceOf(SecretSpecError);
    expect(err).toMatchObject({ field: "name", secret: name.slice(0, 128) });
    expectNoValue(err, API_KEY);
  });
});

describe("SecretSet.create refuses bad hosts, naming the secret and entry but never the value", () => {
  it.each([
    ["no hosts", [], /must name at least one host/],
    ["an IPv4 literal", ["127.0.0.1"], /"127\.0\.0\.1" is an IP address/],
    ["an IPv4 literal with a port", ["10.0.0.1:443"], /is an IP address/],
    ["an IPv6 literal", ["[::1]"], /"\[::1\]" is an IP address/],
    ["an IPv4-mapped IPv6 literal", ["[::ffff:169.254.169.254]"], /IPv4 address/],
    ["a literal among names", ["api.example.com", "[2001:db8::1]:443"], /"\[2001:db8::1\]:443" is an IP address/],
    ["a shorthand IPv4", ["127.1"], /non-canonical form/],
    ["a hex IPv4", ["0x7f.0.0.1"], /non-canonical form/],
    ["a bare *", ["*"], /would allow every host/],
    ["a wildcard over a public suffix", ["*.com"], /public suffix/],
    ["a URL", ["https://api.example.com"], /has a scheme/],
    ["a path", ["api.example.com/v1"], /path/],
    ["user info", ["user@api.example.com"], /'@'/],
    ["port 0", ["api.example.com:0"], /port "0"/],
    ["an empty entry", [""], /is empty/],
    ["whitespace", ["api.example.com "], /whitespace/],
  ])("%s", (_what, hosts, reason) => {
    const err = caught(() => SecretSet.create({ MY_KEY: { hosts, value: API_KEY } }));
    expect(err).toBeInstanceOf(SecretSpecError);
    expect(err).toMatchObject({ secret: "MY_KEY", field: "hosts" });
    expect(err.message).toMatch(/^secrets\.MY_KEY\.hosts /);
    expect(err.message).toMatch(reason);
    expectNoValue(err, API_KEY);
  });

  it("that are not a list", () => {
    const err = caught(() => SecretSet.create({ MY_KEY: { hosts: "api.example.com" as unknown as string[], value: API_KEY } }));
    expect(err).toBeInstanceOf(SecretSpecError);
    expect(err).toMatchObject({ secret: "MY_KEY", field: "hosts" });
    expectNoValue(err, API_KEY);
  });
});

describe("the empty set", () => {
  it("changes nothing and blocks nothing", () => {
    const none = SecretSet.none;
    const placeholder = `SBX_SECRET_${"A".repeat(32)}`;
    expect(none.empty).toBe(true);
    expect(none.env).toEqual({});
    expect(none.hostEntries).toEqual([]);
    expect(none.intercepts("api.example.com", 443)).toBe(false);
    expect(none.find(placeholder)).toEqual([]);
    expect(none.checkUrl(`/?k=${placeholder}`, https("api.example.com"))).toBeNull();
    expect(none.rewriteHeaders(["Authorization", `Bearer ${placeholder}`], http("x.test"))).toEqual(["Authorization", `Bearer ${placeholder}`]);
    expect(none.substitutesBody(https("api.example.com"))).toBe(false);
    expect(none.scrubText(`token ${API_KEY}`)).toBe(`token ${API_KEY}`);
  });

  it("streams pass bytes through unchanged", async () => {
    const data = Buffer.from(`x ${API_KEY} SBX_SECRET_${"b".repeat(32)} y`);
    expect((await pump(SecretSet.none.scrubber(), bytewise(data))).out).toEqual(data);
    expect((await pump(SecretSet.none.bodyInspector(http("x.test")), bytewise(data))).out).toEqual(data);
  });
});

describe("hostEntries and intercepts", () => {
  const set = SecretSet.create({
    A: { hosts: ["api.example.com", "*.internal.example.org:8443"], value: API_KEY },
    B: { hosts: ["api.example.com", "upload.example.net:9000"], value: DB_PASSWORD },
  });

  it("hostEntries lists every secret's entries once, as written", () => {
    expect(set.hostEntries).toEqual(["api.example.com", "*.internal.example.org:8443", "upload.example.net:9000"]);
  });

  it.each([
    ["api.example.com", 443, true],
    ["api.example.com", 8080, true],
    ["x.internal.example.org", 8443, true],
    ["a.b.internal.example.org", 8443, true],
    ["x.internal.example.org", 443, false],
    ["internal.example.org", 8443, false],
    ["upload.example.net", 9000, true],
    ["upload.example.net", 443, false],
    ["example.com", 443, false],
    ["api.example.com.evil.test", 443, false],
    ["evilapi.example.com", 443, false],
    ["127.0.0.1", 443, false],
  ])("intercepts(%s, %i) is %s", (host, port, expected) => {
    expect(set.intercepts(host, port)).toBe(expected);
  });
});

describe("find", () => {
  const { set, api, db } = twoSecrets();

  it("finds each of the set's placeholders once, in order of first appearance", () => {
    expect(set.find(`${db} and ${api} and ${db}`).map((s) => s.name)).toEqual(["DB", "API"]);
  });

  it("finds a placeholder right after a stray prefix or glued to other text", () => {
    expect(set.find(`SBX_SECRET_${api}`).map((s) => s.name)).toEqual(["API"]);
    expect(set.find(`xx${api}yy`).map((s) => s.name)).toEqual(["API"]);
  });

  it("ignores unknown, truncated, lower-cased and other sets' placeholders", () => {
    const other = twoSecrets().api;
    expect(set.find(`SBX_SECRET_${"Z".repeat(32)} ${api.slice(0, -1)} ${api.toLowerCase()} ${other}`)).toEqual([]);
  });
});

describe("checkUrl blocks a placeholder in the request line", () => {
  const { set, api, db } = twoSecrets();
  const to = https("api.example.com");
  const encodeAll = (s: string) => [...s].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join("");

  it.each([
    ["in the query", () => `/v1/models?key=${api}`],
    ["in the path", () => `/v1/${api}/models`],
    ["in an absolute URI", () => `https://api.example.com/v1?key=${api}`],
    ["with _ percent-encoded", () => `/v1?key=${api.replaceAll("_", "%5F")}`],
    ["with _ percent-encoded in lower case", () => `/v1?key=${api.replaceAll("_", "%5f")}`],
    ["with every character percent-encoded", () => `/v1?key=${encodeAll(api)}`],
  ])("%s", (_where, url) => {
    const err = set.checkUrl(url(), to);
    expect(err).toBeInstanceOf(SecretBlocked);
    expect(err!.secret).toBe("API");
    expect(err!.message).toContain("api.example.com:443");
    expect(err!.message).toContain("URL");
    expectNoValue(err!, API_KEY, DB_PASSWORD);
  });

  it("even toward the secret's own host over HTTPS", () => {
    expect(set.checkUrl(`/?k=${db}`, https("db.example.org"))?.secret).toBe("DB");
  });

  it("and lets clean, unknown-placeholder and malformed-escape URLs through", () => {
    expect(set.checkUrl("/v1/models?limit=10", to)).toBeNull();
    expect(set.checkUrl(`/v1?k=SBX_SECRET_${"x".repeat(32)}`, to)).toBeNull();
    expect(set.checkUrl("/v1?discount=100%&q=%ZZ", to)).toBeNull();
  });

  it("when a malformed escape elsewhere in the URL stops it decoding", () => {
    const url = `/v1?key=${api.replaceAll("_", "%5F")}&discount=100%`;
    expect(set.checkUrl(url, to)?.secret).toBe("API");
  });
});

describe("rewriteHeaders over HTTPS to the secret's own host", () => {
  const { set, api, db } = twoSecrets();
  const to = https("api.example.com");

  it("substitutes in several headers and every repetition, leaving the rest as it was", () => {
    const raw = ["Host", "api.example.com", "authorization", `Bearer ${api}`, "X-Api-Key", api, "X-Twice", `${api},${api}`, "Accept", "*/*"];
    const before = [...raw];
    expect(set.rewriteHeaders(raw, to)).toEqual(["Host", "api.example.com", "authorization", `Bearer ${API_KEY}`, "X-Api-Key", API_KEY, "X-Twice", `${API_KEY},${API_KEY}`, "Accept", "*/*"]);
    expect(raw).toEqual(before);
  });

  it("leaves a placeholder split across two headers as it is, halves and all (nothing to substitute, nothing leaks)", () => {
    const cut = 20;
    const raw = ["X-A", api.slice(0, cut), "X-B", api.slice(cut), "X-C", `${api.slice(0, cut)}, ${api.slice(cut)}`];
    expect(set.rewriteHeaders(raw, to)).toEqual(raw);
    expect(set.rewriteHeaders(raw, { ...to, scheme: "http" })).toEqual(raw);
  });

  it("keeps duplicate header names as separate pairs", () => {
    expect(set.rewriteHeaders(["X-K", api, "X-K", "plain"], to)).toEqual(["X-K", API_KEY, "X-K", "plain"]);
  });

  it("substitutes each secret only toward its own host", () => {
    expect(set.rewriteHeaders(["X-Db", db], https("db.example.org"))).toEqual(["X-Db", DB_PASSWORD]);
    expect(set.rewriteHeaders(["X-Api", api], to)).toEqual(["X-Api", API_KEY]);
  });

  it("leaves unknown placeholders as text", () => {
    const stray = `SBX_SECRET_${"q".repeat(32)}`;
    expect(set.rewriteHeaders(["X-K", stray], to)).toEqual(["X-K", stray]);
  });

  it("substitutes a wildcard-bound secret for any subdomain, not the apex or lookalikes", () => {
    const w = SecretSet.create({ W: { hosts: ["*.example.com"], value: API_KEY } });
    const p = w.env.W!;
    for (const host of ["api.example.com", "a.b.example.com"]) expect(w.rewriteHeaders(["X-K", p], https(host))).toEqual(["X-K", API_KEY]);
    for (const host of ["example.com", "example.com.evil.test", "evilexample.com", "api.example.co"]) {
      expect(blocked(() => w.rewriteHeaders(["X-K", p], https(host))).secret).toBe("W");
    }
  });

  it("substitutes a port-bound secret only on that port", () => {
    const pb = SecretSet.create({ P: { hosts: ["api.example.com:8443"], value: API_KEY } });
    const p = pb.env.P!;
    expect(pb.rewriteHeaders(["X-K", p], https("api.example.com", 8443))).toEqual(["X-K", API_KEY]);
    const err = blocked(() => pb.rewriteHeaders(["X-K", p], https("api.example.com", 443)));
    expect(err.message).toContain("api.example.com:443");
    expectNoValue(err, API_KEY);
  });
});

describe("rewriteHeaders blocks", () => {
  const { set, api, db } = twoSecrets();

  it("a secret sent over plain HTTP, even to its own host", () => {
    const err = blocked(() => set.rewriteHeaders(["Authorization", `Bearer ${api}`], http("api.example.com")));
    expect(err.secret).toBe("API");
    expect(err.message).toMatch(/plain HTTP/);
    expectNoValue(err, API_KEY, DB_PASSWORD);
  });

  it("a secret sent over plain HTTP on port 443", () => {
    expect(blocked(() => set.rewriteHeaders(["X-K", api], http("api.example.com", 443))).secret).toBe("API");
  });

  it("one secret's placeholder toward the other secret's host", () => {
    const err = blocked(() => set.rewriteHeaders(["X-K", api], https("db.example.org")));
    expect(err.secret).toBe("API");
    expect(err.message).toContain("db.example.org:443");
    expect(err.message).toContain("api.example.com");
    expectNoValue(err, API_KEY, DB_PASSWORD);
  });

  it("a request carrying its host's secret and another secret, naming the other", () => {
    const err = blocked(() => set.rewriteHeaders(["X-Api", api, "X-Db", db], https("api.example.com")));
    expect(err.secret).toBe("DB");
    expectNoValue(err, API_KEY, DB_PASSWORD);
  });

  it("a placeholder anywhere in a header name, even toward its own host", () => {
    for (const name of [api, `X-${api}`, `${api}-Suffix`]) {
      const err = blocked(() => set.rewriteHeaders([name, "v"], https("api.example.com")));
      expect(err.secret).toBe("API");
      expect(err.message).toMatch(/header name/);
    }
  });

  it("a secret toward an address, showing an IPv6 destination in brackets", () => {
    const err = blocked(() => set.rewriteHeaders(["X-K", api], https("2001:db8::1")));
    expect(err.message).toContain("[2001:db8::1]:443");
  });
});

describe("rewriteHeaders and Authorization: Basic", () => {
  const { set, api, db } = twoSecrets();
  const to = https("api.example.com");

  it("decodes, substitutes and re-encodes user:placeholder", () => {
    const [, value] = set.rewriteHeaders(["Authorization", `Basic ${b64(`user:${api}`)}`], to);
    expect(value).toBe(`Basic ${b64(`user:${API_KEY}`)}`);
    expect(Buffer.from(value!.slice(6), "base64").toString("latin1")).toBe(`user:${API_KEY}`);
  });

  it("substitutes a placeholder user name and a placeholder password together", () => {
    const both = SecretSet.create({ U: { hosts: ["api.example.com"], value: "the-user-name" }, P: { hosts: ["api.example.com"], value: API_KEY } });
    const raw = ["Authorization", `Basic ${b64(`${both.env.U}:${both.env.P}`)}`];
    expect(both.rewriteHeaders(raw, to)).toEqual(["Authorization", `Basic ${b64(`the-user-name:${API_KEY}`)}`]);
  });

  it("matches the header name and scheme case-insensitively and keeps their spelling and spacing", () => {
    expect(set.rewriteHeaders(["AUTHORIZATION", `basic  ${b64(`u:${api}`)}`], to)).toEqual(["AUTHORIZATION", `basic  ${b64(`u:${API_KEY}`)}`]);
  });

  it("reads a URL-safe, unpadded encoding", () => {
    const user = "??>>";
    const encoded = b64url(`${user}:${api}`);
    expect(encoded).toMatch(/[-_]/);
    const [, value] = set.rewriteHeaders(["Authorization", `Basic ${encoded}`], to);
    expect(Buffer.from(value!.slice(6), "base64").toString("latin1")).toBe(`${user}:${API_KEY}`);
  });

  it("leaves a Basic header without a placeholder byte for byte", () => {
    const raw = ["Authorization", "Basic dXNlcg", "authorization", "basic dXNlcjpwYXNz  "];
    expect(set.rewriteHeaders(raw, to)).toEqual(raw);
  });

  it("blocks user:placeholder toward another secret's host", () => {
    const err = blocked(() => set.rewriteHeaders(["Authorization", `Basic ${b64(`user:${api}`)}`], https("db.example.org")));
    expect(err.secret).toBe("API");
    expectNoValue(err, API_KEY, DB_PASSWORD);
  });

  it("blocks user:placeholder toward an unrelated host, URL-safe encoded", () => {
    expect(blocked(() => set.rewriteHeaders(["Authorization", `Basic ${b64url(`??>>:${api}`)}`], https("evil.test"))).secret).toBe("API");
  });

  it("blocks user:placeholder over plain HTTP to its own host", () => {
    expect(blocked(() => set.rewriteHeaders(["Authorization", `Basic ${b64(`user:${api}`)}`], http("api.example.com"))).secret).toBe("API");
  });

  it("blocks the other secret hidden in Basic toward this secret's host", () => {
    expect(blocked(() => set.rewriteHeaders(["X-Api", api, "Authorization", `Basic ${b64(`user:${db}`)}`], to)).secret).toBe("DB");
  });
});

describe("checkPlain blocks any placeholder of the set in a plain-HTTP request", () => {
  const { set, api, db } = twoSecrets();

  it("whatever the host, even the secret's own", () => {
    const basic = (user: string) => `Basic ${Buffer.from(`${user}:x`).toString("base64")}`;
    for (const [url, headers, name, host] of [
      [`/?k=${api}`, [], "API", "api.example.com"],
      ["/", ["X-Db", db], "DB", "db.example.org"],
      ["/", ["X-Db", db], "DB", "evil.test"],
      [`/?k=${api.replaceAll("_", "%5F")}`, [], "API", "evil.test"],
      ["/", ["Authorization", basic(db)], "DB", "evil.test"],
      ["/", [db, "a header named after it"], "DB", "evil.test"],
    ] as const) {
      const err = set.checkPlain(url, headers, http(host));
      expect(err).toBeInstanceOf(SecretBlocked);
      expect(err!.secret).toBe(name);
      expect(err!.message).toMatch(/plain HTTP/);
      expect(err!.message).toContain(`${host}:80`);
      expectNoValue(err!, API_KEY, DB_PASSWORD);
    }
  });

  it("and lets through text without one", () => {
    expect(set.checkPlain(`/?k=SBX_SECRET_${"x".repeat(32)}`, ["Accept", "*/*"], http("api.example.com"))).toBeNull();
  });
});

describe("substitutesBody and valueFor", () => {
  const set = SecretSet.create({
    BODY: { hosts: ["api.example.com"], value: API_KEY, body: true },
    HEADER_ONLY: { hosts: ["db.example.org"], value: DB_PASSWORD },
  });
  const bodySecret = set.secrets[0]!;
  const headerSecret = set.secrets[1]!;

  it("substitutesBody only over HTTPS to a host a body secret is bound to", () => {
    expect(set.substitutesBody(https("api.example.com"))).toBe(true);
    expect(set.substitutesBody(http("api.example.com"))).toBe(false);
    expect(set.substitutesBody(https("db.example.org"))).toBe(false);
    expect(set.substitutesBody(https("evil.test"))).toBe(false);
  });

  it("valueFor gives the value in a header or an opted-in body to the secret's own host", () => {
    expect(set.valueFor(bodySecret, https("api.example.com"), "header")).toBe(API_KEY);
    expect(set.valueFor(bodySecret, https("api.example.com"), "body")).toBe(API_KEY);
    expect(set.valueFor(headerSecret, https("db.example.org"), "header")).toBe(DB_PASSWORD);
  });

  it("valueFor refuses a body for a secret that did not opt in, without the value", () => {
    const err = blocked(() => set.valueFor(headerSecret, https("db.example.org"), "body"));
    expect(err.message).toMatch(/body: true/);
    expectNoValue(err, DB_PASSWORD);
  });

  it("valueFor refuses plain HTTP and other hosts whatever the place", () => {
    for (const where of ["header", "body"] as const) {
      expect(blocked(() => set.valueFor(bodySecret, http("api.example.com"), where)).message).toMatch(/plain HTTP/);
      expect(blocked(() => set.valueFor(bodySecret, https("db.example.org"), where)).message).toMatch(/not for db\.example\.org:443/);
    }
  });
});

describe("bodyInspector", () => {
  const set = SecretSet.create({
    BODY: { hosts: ["api.example.com"], value: API_KEY, body: true },
    OTHER: { hosts: ["db.example.org"], value: DB_PASSWORD, body: true },
    HEADER_ONLY: { hosts: ["api.example.com"], value: "header-only-value" },
  });
  const body = set.env.BODY!;
  const other = set.env.OTHER!;
  const headerOnly = set.env.HEADER_ONLY!;
  const to = https("api.example.com");

  it("substitutes an opted-in placeholder split at every byte boundary", async () => {
    const input = Buffer.from(`{"key":"${body}","again":"${body}"}`);
    const expected = Buffer.from(`{"key":"${API_KEY}","again":"${API_KEY}"}`);
    for (let k = 0; k <= input.length; k++) {
      const { out, error } = await pump(set.bodyInspector(to), splitAt(input, k));
      expect(error).toBeNull();
      expect(out.toString()).toBe(expected.toString());
    }
    expect((await pump(set.bodyInspector(to), bytewise(input))).out.toString()).toBe(expected.toString());
  });

  it("substitutes placeholders at the very start and end of the body", async () => {
    const { out } = await pump(set.bodyInspector(to), bytewise(Buffer.from(`${body}${body}`)));
    expect(out.toString()).toBe(`${API_KEY}${API_KEY}`);
  });

  it("passes unknown placeholders and near-misses through", async () => {
    const text = `SBX_SECRET_${"n".repeat(32)} ${body.slice(0, -1)}! SBX_SECRET_`;
    const { out, error } = await pump(set.bodyInspector(to), bytewise(Buffer.from(text)));
    expect(error).toBeNull();
    expect(out.toString()).toBe(text);
  });

  it("holds back fewer than PLACEHOLDER_LENGTH bytes of clean input", async () => {
    const chunks = Array.from({ length: 20 }, (_, i) => Buffer.alloc(100, 97 + i));
    const { out } = await pump(set.bodyInspector(to), chunks, (written, emitted) => {
      expect(written - emitted).toBeLessThan(PLACEHOLDER_LENGTH);
    });
    expect(out).toEqual(Buffer.concat(chunks));
  });

  describe.each([
    ["another host's placeholder", () => other, to, "OTHER"],
    ["a header-only secret's placeholder", () => headerOnly, to, "HEADER_ONLY"],
    ["an opted-in placeholder over plain HTTP", () => body, http("api.example.com"), "BODY"],
    ["an opted-in placeholder toward another host", () => body, https("evil.test"), "BODY"],
  ])("ends the stream at %s before emitting any byte of it", (_what, placeholder, dest, name) => {
    const before = `{"pad":"${"p".repeat(150)}","key":"`;
    const input = () => Buffer.from(`${before}${placeholder()}","tail":"${"t".repeat(50)}"}`);

    function check({ out, error }: Pumped): void {
      expect(error).toBeInstanceOf(SecretBlocked);
      expect((error as SecretBlocked).secret).toBe(name);
      expectNoValue(error!, API_KEY, DB_PASSWORD, "header-only-value");
      expect(before.startsWith(out.toString("latin1"))).toBe(true);
      expect(out.includes("SBX_")).toBe(false);
    }

    it("whichever byte boundary splits the body in two", async () => {
      const buf = input();
      for (let k = 0; k <= buf.length; k++) check(await pump(set.bodyInspector(dest), splitAt(buf, k)));
    });

    it("with one-byte chunks and random chunkings", async () => {
      const buf = input();
      check(await pump(set.bodyInspector(dest), bytewise(buf)));
      const rand = mulberry32(7);
      for (let i = 0; i < 50; i++) check(await pump(set.bodyInspector(dest), randomChunks(buf, rand, 60)));
    });
  });

  it("blocks a forbidden placeholder that follows an allowed one, having emitted only bytes before it", async () => {
    const text = `a=${body}&b=${other}&c=1`;
    const emittedUpTo = `a=${API_KEY}&b=`;
    for (let k = 0; k <= text.length; k++) {
      const { out, error } = await pump(set.bodyInspector(to), splitAt(Buffer.from(text), k));
      expect((error as SecretBlocked).secret).toBe("OTHER");
      expect(emittedUpTo.startsWith(out.toString())).toBe(true);
    }
  });
});

describe("valueForms", () => {
  it("is the value, its JSON and percent-encoded spellings, base64 cores at three alignments in both alphabets, then hex in both cases", () => {
    expect(valueForms("tok?~/?~?~end")).toEqual([
      "tok?~/?~?~end",
      "tok?~\\/?~?~end",
      "tok%3F~%2F%3F~%3F~end",
      "tok%3f~%2f%3f~%3f~end",
      "dG9rP34vP34/fmVuZ",
      "dG9rP34vP34_fmVuZ",
      "Rvaz9+Lz9+P35lbm",
      "Rvaz9-Lz9-P35lbm",
      "0b2s/fi8/fj9+ZW5k",
      "0b2s_fi8_fj9-ZW5k",
      "746f6b3f7e2f3f7e3f7e656e64",
      "746F6B3F7E2F3F7E3F7E656E64",
    ]);
  });

  it("lists a spelling only where it differs", () => {
    expect(valueForms("abcdefghijkl")).toHaveLength(6);
    expect(valueForms("12345678")).toContain("3132333435363738"); // digits: one hex spelling
    expect(valueForms("12345678").filter((f) => /^[0-9a-f]+$/i.test(f) && f.length === 16)).toHaveLength(1);
  });

  it("leaves out forms shorter than the minimum", () => {
    expect(valueForms("abcde")).toEqual(["abcde", "6162636465"]); // hex is never short; these digits have one case
    for (const f of valueForms("12345678")) expect(f.length).toBeGreaterThanOrEqual(MIN_VALUE_LENGTH);
  });

  it("has a form inside the base64 of the value behind any prefix and before any suffix", () => {
    const rand = mulberry32(42);
    const randomText = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(rand() * 95))).join("");
    for (let i = 0; i < 300; i++) {
      const value = randomText(8 + Math.floor(rand() * 40));
      const forms = valueForms(value);
      const text = randomText(Math.floor(rand() * 12)) + value + randomText(Math.floor(rand() * 4));
      expect(forms.some((f) => b64(text).includes(f))).toBe(true);
      expect(forms.some((f) => b64url(text).includes(f))).toBe(true);
    }
  });
});

describe("scrubText", () => {
  const { set, api, db } = twoSecrets();

  it.each([
    ["a bearer token", (v: string) => `Bearer ${v}`],
    ["a cookie", (v: string) => `session=${v}; Path=/; HttpOnly`],
    ["a repeated value", (v: string) => `${v},${v}`],
    ["an echoed Basic header", (v: string) => `Basic ${b64(`user:${v}`)}`],
    ["base64 of the value at offset 1", (v: string) => b64(`a${v}`)],
    ["base64 of the value at offset 2", (v: string) => b64(`ab${v}`)],
    ["URL-safe base64", (v: string) => b64url(`user:${v}`)],
  ])("removes every form of the value from %s", (_what, make) => {
    const scrubbed = set.scrubText(make(API_KEY));
    expect(scrubbed).toContain(api);
    for (const form of valueForms(API_KEY)) expect(scrubbed).not.toContain(form);
  });

  it("scrubs each secret's value to its own placeholder", () => {
    expect(set.scrubText(`${API_KEY} ${DB_PASSWORD}`)).toBe(`${api} ${db}`);
  });

  it("leaves text without a value untouched, including near misses", () => {
    const text = `${API_KEY.slice(0, -1)} ${API_KEY.slice(1)} ${API_KEY.toUpperCase()} ${b64("user:pass")} ok`;
    expect(set.scrubText(text)).toBe(text);
  });

  it("replaces a value that contains another secret's value whole", () => {
    const nested = SecretSet.create({ SHORT: { hosts: ["a.example.com"], value: "abcdefgh12" }, LONG: { hosts: ["b.example.com"], value: "XXabcdefgh12YY" } });
    expect(nested.scrubText("[XXabcdefgh12YY] [abcdefgh12]")).toBe(`[${nested.env.LONG}] [${nested.env.SHORT}]`);
  });
});

describe("scrubber on a stream of events", () => {
  const set = SecretSet.create({ K: { hosts: ["api.example.com"], value: API_KEY } });

  it("passes each chunk on at once when its tail cannot start a value (a streamed completion is not held back an event)", () => {
    const s = set.scrubber();
    const out: string[] = [];
    s.on("data", (d: Buffer) => out.push(d.toString("latin1")));
    s.write(Buffer.from('data: {"delta":"Hel"}\n\n'));
    expect(out.join("")).toBe('data: {"delta":"Hel"}\n\n');
    s.write(Buffer.from('data: {"delta":"lo"}\n\n'));
    expect(out.join("")).toBe('data: {"delta":"Hel"}\n\ndata: {"delta":"lo"}\n\n');
  });

  it("holds only a tail that could be the start of a value, and scrubs it when the rest arrives", () => {
    const s = set.scrubber();
    const out: string[] = [];
    s.on("data", (d: Buffer) => out.push(d.toString("latin1")));
    s.write(Buffer.from(`event: key=${API_KEY.slice(0, 5)}`));
    expect(out.join("")).toBe("event: key=");
    s.write(Buffer.from(`${API_KEY.slice(5)}\n`));
    expect(out.join("")).toBe(`event: key=${set.env.K}\n`);
  });
});

describe("scrubber", () => {
  const VALUE = "tok?~/?~?~end";
  const set = SecretSet.create({ K: { hosts: ["api.example.com"], value: VALUE }, API: { hosts: ["b.example.com"], value: API_KEY } });
  const placeholder = set.env.K!;
  const forms = valueForms(VALUE);
  const hold = Math.max(...[...forms, ...valueForms(API_KEY)].map((f) => f.length)) - 1;

  function expectScrubbed(out: Buffer): void {
    const text = out.toString("latin1");
    for (const f of forms) expect(text).not.toContain(f);
    expect(text).toContain(placeholder);
  }

  it.each([
    ["the raw value", `{"token":"${VALUE}"}`],
    ["base64 of user:value", `{"authorization":"Basic ${b64(`user:${VALUE}`)}"}`],
    ["base64 of ab+value", `echo: ${b64(`ab${VALUE}`)}`],
    ["base64 of a+value", `echo: ${b64(`a${VALUE}`)}`],
    ["URL-safe base64 of user:value", `jwt.${b64url(`user:${VALUE}`)}.sig`],
    ["URL-safe base64 of ab+value", `jwt.${b64url(`ab${VALUE}`)}.sig`],
  ])("replaces %s split at every byte boundary and in one-byte chunks", async (_what, text) => {
    const input = Buffer.from(text, "latin1");
    for (let k = 0; k <= input.length; k++) expectScrubbed((await pump(set.scrubber(), splitAt(input, k))).out);
    expectScrubbed((await pump(set.scrubber(), bytewise(input))).out);
  });

  it("gives the same output as scrubText for any chunking", async () => {
    const text = Buffer.from(`a ${VALUE} b ${b64(`user:${API_KEY}`)} c ${API_KEY}${VALUE} ${b64url(`ab${VALUE}`)} end`, "latin1");
    const expected = set.scrubText(text.toString("latin1"));
    const rand = mulberry32(3);
    for (let i = 0; i < 100; i++) expect((await pump(set.scrubber(), randomChunks(text, rand, 30))).out.toString("latin1")).toBe(expected);
  });

  it("leaves unrelated text untouched byte for byte", async () => {
    const text = Buffer.from(`${VALUE.slice(0, -1)}|${VALUE.slice(1)}|${b64("user:password")}|SBX_SECRET_|${"x".repeat(500)}|\u00ff\u0000`, "latin1");
    expect((await pump(set.scrubber(), bytewise(text))).out).toEqual(text);
    expect((await pump(set.scrubber(), [text])).out).toEqual(text);
  });

  it("passes 8 MiB through in 64 KiB chunks, scrubbing values across chunk boundaries and holding back a bounded tail", async () => {
    const rand = mulberry32(1);
    const hex = (n: number) => {
      const buf = Buffer.alloc(n);
      for (let i = 0; i < n; i++) buf[i] = "0123456789abcdef".charCodeAt(Math.floor(rand() * 16));
      return buf;
    };
    const size = 8 * 1024 * 1024;
    const chunk = 64 * 1024;
    const starts = [0, chunk - 5, 3 * chunk - 1, 5 * chunk + 1, 77 * chunk - VALUE.length, size - VALUE.length];
    const parts: Buffer[] = [];
    const expectedParts: Buffer[] = [];
    let at = 0;
    for (const s of starts) {
      const gap = hex(s - at);
      parts.push(gap, Buffer.from(VALUE));
      expectedParts.push(gap, Buffer.from(placeholder));
      at = s + VALUE.length;
    }
    const input = Buffer.concat(parts);
    expect(input.length).toBe(size);
    const chunks = Array.from({ length: size / chunk }, (_, i) => input.subarray(i * chunk, (i + 1) * chunk));
    const { out, error } = await pump(set.scrubber(), chunks);
    expect(error).toBeNull();
    expect(out.equals(Buffer.concat(expectedParts))).toBe(true);

    const clean = hex(size);
    const cleanChunks = Array.from({ length: size / chunk }, (_, i) => clean.subarray(i * chunk, (i + 1) * chunk));
    let maxHeld = 0;
    const passed = await pump(set.scrubber(), cleanChunks, (written, emitted) => {
      maxHeld = Math.max(maxHeld, written - emitted);
    });
    expect(passed.out.equals(clean)).toBe(true);
    expect(maxHeld).toBeLessThanOrEqual(hold);
  });
});

describe("StreamReplacer", () => {
  const bufs = (...s: string[]) => s.map((x) => Buffer.from(x));
  const tag = (i: number) => Buffer.from(`<${i}>`);

  it("ends an empty stream without output", async () => {
    expect(await pump(new StreamReplacer(bufs("abc"), tag), [])).toEqual({ out: Buffer.alloc(0), error: null });
  });

  it("passes everything through with no patterns", async () => {
    const data = Buffer.from("anything at all");
    expect((await pump(new StreamReplacer([], tag), bytewise(data))).out).toEqual(data);
  });

  it("replaces patterns at the start, the end, and back to back", async () => {
    const r = () => new StreamReplacer(bufs("foo", "barbaz"), tag);
    expect((await pump(r(), bufs("foo middle barbaz"))).out.toString()).toBe("<0> middle <1>");
    expect((await pump(r(), bytewise(Buffer.from("foobarbazfoo")))).out.toString()).toBe("<0><1><0>");
  });

  it("prefers the earliest match, then the longest, and never rescans a replacement", async () => {
    const r = () => new StreamReplacer(bufs("ab", "bcdefg", "abcd"), (i) => Buffer.from(["bcdefg", "[bcdefg]", "[abcd]"][i]!));
    expect((await pump(r(), bufs("abcdefg"))).out.toString()).toBe("[abcd]efg");
    expect((await pump(r(), bufs("abxbcdefg"))).out.toString()).toBe("bcdefgx[bcdefg]");
  });

  it("replaces self-overlapping occurrences left to right without overlap", async () => {
    expect((await pump(new StreamReplacer(bufs("aaaa"), tag), bytewise(Buffer.from("aaaaaaaaaa")))).out.toString()).toBe("<0><0>aa");
  });

  it("calls the replacement once per match with the pattern's index", async () => {
    const calls: number[] = [];
    await pump(
      new StreamReplacer(bufs("xx", "yyy"), (i) => {
        calls.push(i);
        return tag(i);
      }),
      bytewise(Buffer.from("xx yyy xxx yyyy")),
    );
    expect(calls).toEqual([0, 1, 0, 1]);
  });

  describe.each([
    ["patterns without a shared prefix", bufs("a", "ba", "aab", "abab", "bbbbb"), "ab"],
    ["patterns with a shared prefix", bufs("XYab", "XYa", "XYbb", "XYXY"), "XYab"],
    ["one long self-overlapping pattern", bufs("abababababab"), "ab"],
  ])("with %s, matches the whole-input result however the input is chunked", (_what, patterns, alphabet) => {
    const replacement = (i: number) => Buffer.from(`{${i}}`);

    it("at every single split point and in one-byte chunks", async () => {
      const rand = mulberry32(11);
      for (let n = 0; n < 20; n++) {
        const input = Buffer.from(Array.from({ length: 40 }, () => alphabet[Math.floor(rand() * alphabet.length)]!).join(""));
        const expected = replaceAllReference(input, patterns, replacement).toString();
        for (let k = 0; k <= input.length; k++) expect((await pump(new StreamReplacer(patterns, replacement), splitAt(input, k))).out.toString()).toBe(expected);
        expect((await pump(new StreamReplacer(patterns, replacement), bytewise(input))).out.toString()).toBe(expected);
      }
    });

    it("in random chunkings of random inputs", async () => {
      const rand = mulberry32(99);
      for (let n = 0; n < 200; n++) {
        const input = Buffer.from(Array.from({ length: Math.floor(rand() * 120) }, () => alphabet[Math.floor(rand() * alphabet.length)]!).join(""));
        const expected = replaceAllReference(input, patterns, replacement).toString();
        expect((await pump(new StreamReplacer(patterns, replacement), randomChunks(input, rand, 16))).out.toString()).toBe(expected);
      }
    });
  });

  it("errors the stream when the replacement throws, without emitting the match or the bytes beside it in that chunk", async () => {
    const r = () =>
      new StreamReplacer(bufs("BAD"), () => {
        throw new Error("refused");
      });
    expect(await pump(r(), bufs("hello BAD world"))).toEqual({ out: Buffer.alloc(0), error: new Error("refused") });
    for (const chunks of [bytewise(Buffer.from("hello BAD world")), bufs("hello B", "AD world"), bufs("hello ", "BAD world")]) {
      const { out, error } = await pump(r(), chunks);
      expect(error?.message).toBe("refused");
      expect("hello ".startsWith(out.toString())).toBe(true);
    }
  });

  it("errors at the end of the stream when a short match sits in the held-back tail", async () => {
    const { out, error } = await pump(
      new StreamReplacer(bufs("LONGER", "Z"), (i) => {
        if (i === 1) throw new Error("refused at flush");
        return tag(i);
      }),
      bufs("ok Z"),
    );
    expect(error?.message).toBe("refused at flush");
    expect(out.toString()).not.toContain("Z");
  });
});
