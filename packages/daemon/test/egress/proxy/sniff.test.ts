import { randomBytes } from "node:crypto";
import { createServer, type AddressInfo } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { beforeAll, describe, expect, it } from "vitest";
import { clientHelloServerName, MAX_CLIENT_HELLO, plaintextKind } from "../../../src/egress/proxy/sniff.js";

/** The first flight of a real TLS client (Node's OpenSSL) asking for `servername`. */
async function realHello(servername?: string): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const got = new Promise<Buffer>((resolve) => {
    server.once("connection", (sock) => {
      let buf = Buffer.alloc(0);
      sock.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
          resolve(buf);
          sock.destroy();
        }
      });
    });
  });
  const client = tlsConnect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port, ...(servername ? { servername } : {}), rejectUnauthorized: false });
  client.on("error", () => {});
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

/** The handshake message of a one-record ClientHello, re-sent in records cut at `cuts` (offsets into the message). */
function resplit(hello: Buffer, cuts: number[]): Buffer {
  const message = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < message.length).sort((a, b) => a - b), message.length];
  const records: Buffer[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const part = message.subarray(bounds[i], bounds[i + 1]);
    if (part.length === 0) continue;
    const header = Buffer.from([0x16, 3, 1, 0, 0]);
    header.writeUInt16BE(part.length, 3);
    records.push(header, part);
  }
  return Buffer.concat(records);
}

/** A ClientHello body built by hand, to put whatever extensions a test needs into it. */
function handmade(extensions: Array<[number, Buffer]>, opts: { suites?: Buffer; compression?: Buffer; extensionsLengthDelta?: number } = {}): Buffer {
  const ext = Buffer.concat(extensions.map(([type, data]) => Buffer.concat([u16(type), u16(data.length), data])));
  const suites = opts.suites ?? Buffer.from([0x13, 0x01]);
  const compression = opts.compression ?? Buffer.from([0]);
  const body = Buffer.concat([Buffer.from([3, 3]), randomBytes(32), Buffer.from([0]), u16(suites.length), suites, Buffer.from([compression.length]), compression, u16(ext.length + (opts.extensionsLengthDelta ?? 0)), ext]);
  const message = Buffer.concat([Buffer.from([1, 0, 0, 0]), body]);
  message.writeUIntBE(body.length, 1, 3);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(message.length), message]);
}
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const sni = (...names: Array<[number, string]>) => {
  const list = Buffer.concat(names.map(([kind, name]) => Buffer.concat([Buffer.from([kind]), u16(name.length), Buffer.from(name, "latin1")])));
  return Buffer.concat([u16(list.length), list]);
};

let hello: Buffer;
let noSni: Buffer;
beforeAll(async () => {
  hello = await realHello("evil.test");
  noSni = await realHello();
});

describe("clientHelloServerName", () => {
  it("reads the server name of a real ClientHello, and null from one without SNI", () => {
    expect(clientHelloServerName(hello)).toBe("evil.test");
    expect(clientHelloServerName(noSni)).toBeNull();
  });

  it("reassembles a ClientHello split across records at every offset (the SNI-bypass of resilience item 3)", () => {
    const length = hello.readUInt16BE(3);
    for (let cut = 1; cut < length; cut++) expect(clientHelloServerName(resplit(hello, [cut])), `cut at ${cut}`).toBe("evil.test");
    // One byte per record, too.
    expect(clientHelloServerName(resplit(hello, Array.from({ length }, (_, i) => i)))).toBe("evil.test");
  });

  it("answers more until the last record is whole, at every prefix", () => {
    const split = resplit(hello, [7, 90, 200]);
    for (let n = 1; n < split.length; n++) expect(clientHelloServerName(split.subarray(0, n)), `prefix ${n}`).toBe("more");
    expect(clientHelloServerName(Buffer.concat([split, Buffer.from("application data follows")]))).toBe("evil.test");
  });

  it("refuses what it cannot read instead of calling it no name", () => {
    const message = hello.subarray(5);
    const cases: Record<string, Buffer> = {
      "a non-handshake record in the middle": Buffer.concat([resplit(hello, [10]).subarray(0, 15), Buffer.from([0x17, 3, 3, 0, 1, 0])]),
      "a record version that is not 3.x": Buffer.concat([Buffer.from([0x16, 2, 0]), hello.subarray(3)]),
      "an empty record": Buffer.concat([Buffer.from([0x16, 3, 1, 0, 0]), hello]),
      "a record over 2^14 bytes": Buffer.from([0x16, 3, 1, 0x40, 0x01]),
      "a handshake that is not a ClientHello": Buffer.concat([hello.subarray(0, 5), Buffer.from([2]), message.subarray(1)]),
      "a ClientHello longer than the cap": (() => {
        const b = Buffer.from(hello);
        b.writeUIntBE(MAX_CLIENT_HELLO, 6, 3);
        return b;
      })(),
      "two server_name extensions": handmade([[0, sni([0, "allowed.test"])], [0, sni([0, "evil.test"])]]),
      "two host_names in one extension": handmade([[0, sni([0, "allowed.test"], [0, "evil.test"])]]),
      "an empty host_name": handmade([[0, sni([0, ""])]]),
      "a server_name list longer than its extension": handmade([[0, Buffer.from([0, 9, 0, 0, 1, 0x61])]]),
      "extensions longer than the message": handmade([[0, sni([0, "a.test"])]], { extensionsLengthDelta: 1 }),
      "bytes after the extensions": handmade([[0, sni([0, "a.test"])]], { extensionsLengthDelta: -1 }),
      "no cipher suites": handmade([], { suites: Buffer.alloc(0) }),
      "no compression method": handmade([], { compression: Buffer.alloc(0) }),
    };
    for (const [name, bytes] of Object.entries(cases)) expect(clientHelloServerName(bytes), name).toBe("bad");
  });

  it("reads the host_name among other name types, and no SNI at all as null", () => {
    expect(clientHelloServerName(handmade([[0, sni([7, "other"], [0, "allowed.test"])]]))).toBe("allowed.test");
    expect(clientHelloServerName(handmade([[10, Buffer.from([0, 2, 0, 29])]]))).toBeNull();
    expect(clientHelloServerName(Buffer.from("GET / HTTP/1.1\r\n"))).toBe("not-tls");
  });

  it("fuzz: random and mutated inputs always get an answer, never an exception, and never a name that is not in them", () => {
    const seeds = [hello, noSni, resplit(hello, [3, 50, 51, 300]), handmade([[0, sni([0, "allowed.test"])]])];
    for (let i = 0; i < 20_000; i++) {
      const seed = seeds[i % seeds.length]!;
      const input = Buffer.from(i % 5 === 0 ? randomBytes(1 + (i % 700)) : seed);
      if (i % 5 !== 0) {
        for (let m = 0; m < 1 + (i % 8); m++) input[(Math.random() * input.length) | 0] = (Math.random() * 256) | 0;
      }
      const cut = i % 3 === 0 ? input.subarray(0, (Math.random() * input.length) | 0) : input;
      const result = clientHelloServerName(cut);
      if (typeof result === "string" && !["more", "not-tls", "bad"].includes(result)) expect(cut.includes(Buffer.from(result, "latin1"))).toBe(true);
    }
  });
});

describe("plaintextKind", () => {
  it("tells an HTTP request line from other protocols, waiting only while it could still become one", () => {
    expect(plaintextKind(Buffer.from("GET http://x/ HTTP/1.1\r\nHost: x\r\n"))).toBe("http");
    expect(plaintextKind(Buffer.from("POST /a HTTP/1.0\n"))).toBe("http");
    expect(plaintextKind(Buffer.from("EHLO mail.test\r\n"))).toBe("other");
    expect(plaintextKind(Buffer.from("GET / HTTP/2\r\n"))).toBe("other");
    for (const partial of ["G", "GET", "GET ", "GET /x", "GET /x ", "GET /x HTTP/1.", "GET /x HTTP/1.1\r"]) expect(plaintextKind(Buffer.from(partial)), partial).toBe("more");
    expect(plaintextKind(Buffer.from("get / HTTP/1.1"))).toBe("other");
    expect(plaintextKind(Buffer.from("GET /" + "a".repeat(9000)))).toBe("other");
  });

  it("fuzz: never throws and waits for at most 8 KiB", () => {
    for (let i = 0; i < 20_000; i++) {
      const bytes = i % 2 ? randomBytes(i % 9000) : Buffer.from(`GET /${"x".repeat(i % 50)} HTTP/1.${i % 3}\r\n`.slice(0, i % 40));
      const kind = plaintextKind(bytes);
      expect(["http", "other", "more"]).toContain(kind);
      if (bytes.length >= 8192) expect(kind).not.toBe("more");
    }
  });
});
