import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { ClientSocket, isValidCloseCode, MAX_FRAGMENTS } from "../src/net/client-socket.js";
import { clientFrame, FrameReader, frameHeader, Opcode, payloadByte, payloadOf, remask, serverFrame, type Frame } from "../src/net/frames.js";
import { acceptUpgrade } from "../src/server/upgrade.js";

const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));

/** A client's frame with the given key (4 bytes), fin and reserved bits as asked: for frames no client library would send. */
function rawClientFrame(opcode: number, payload: Buffer, opts: { fin?: boolean; key?: Buffer | null; rsv?: number } = {}): Buffer {
  const key = opts.key === undefined ? randomBytes(4) : opts.key;
  const header = frameHeader(opcode, payload.length, key ? key.readUInt32BE(0) : null);
  if (opts.fin === false) header[0]! &= 0x7f;
  header[0]! |= opts.rsv ?? 0;
  const body = Buffer.from(payload.map((b, i) => (key ? b ^ key[i & 3]! : b)));
  return Buffer.concat([header, body]);
}

function readFrames(input: Buffer, chunk: number, from: "server" | "client", max = 1 << 20) {
  const frames: Frame[] = [];
  const reader = new FrameReader(max, (f) => frames.push(f), from);
  let problem = null;
  for (let i = 0; i < input.length && !problem; i += chunk) problem = reader.push(input.subarray(i, i + chunk));
  return { frames, problem };
}

describe("FrameReader on a client's frames", () => {
  const payloads = [bytes(0), bytes(5), bytes(125), bytes(126), bytes(65536), bytes(200_000)];
  const stream = Buffer.concat(payloads.map((p, i) => rawClientFrame(i % 2 ? Opcode.Text : Opcode.Binary, p)));

  it.each([1, 3, 4096, stream.length])("reads masked frames %i bytes at a time and unmasks their payloads", (chunk) => {
    const { frames, problem } = readFrames(Buffer.from(stream), chunk, "client"); // a copy: payloadOf unmasks in place
    expect(problem).toBeNull();
    frames.forEach((f, i) => {
      expect(f.key).not.toBe(0);
      if (f.payloadLength > 6) expect(payloadByte(f, 6)).toBe(payloads[i]![6]); // unmasked on the fly
      expect(payloadOf(f).equals(payloads[i]!)).toBe(true);
      expect(f.key).toBe(0); // unmasked in place
      if (f.payloadLength > 6) expect(payloadByte(f, 6)).toBe(payloads[i]![6]);
    });
  });

  it.each([
    ["an unmasked frame", 1002, rawClientFrame(Opcode.Binary, bytes(3), { key: null }), /unmasked frame/],
    ["reserved bits (an extension nobody agreed)", 1002, rawClientFrame(Opcode.Text, Buffer.from("x"), { rsv: 0x40 }), /reserved bits/],
    ["a fragmented ping", 1002, rawClientFrame(Opcode.Ping, bytes(1), { fin: false }), /control frame/],
    ["a 126-byte ping", 1002, rawClientFrame(Opcode.Ping, bytes(126)), /control frame/],
    ["an unknown opcode", 1002, rawClientFrame(0xb, bytes(1)), /unknown opcode 11/],
    ["a frame over the limit", 1009, rawClientFrame(Opcode.Binary, bytes(1001)), /1001-byte frame, over the 1000-byte limit/],
  ])("refuses %s with close code %i", (_what, code, input, pattern) => {
    const { frames, problem } = readFrames(input, 2, "client", 1000);
    expect(frames).toEqual([]);
    expect(problem?.code).toBe(code);
    expect(problem?.message).toMatch(pattern);
  });

  it("holds frames while paused and hands them on, in order, on resume", () => {
    const seen: number[] = [];
    const reader = new FrameReader(1 << 20, (f) => seen.push(f.payloadLength), "client");
    reader.pause();
    expect(reader.push(Buffer.concat([rawClientFrame(Opcode.Binary, bytes(1)), rawClientFrame(Opcode.Binary, bytes(2))]))).toBeNull();
    expect(seen).toEqual([]);
    expect(reader.resume()).toBeNull();
    expect(seen).toEqual([1, 2]);
  });
});

describe("remask", () => {
  it.each([5, 126, 70_000])("re-masks a %i-byte client frame with a fresh key, in place, split over reads", (n) => {
    const payload = bytes(n);
    const { frames } = readFrames(rawClientFrame(Opcode.Binary, payload), 777, "client");
    const f = frames[0]!;
    const clientKey = f.key;
    const before = Buffer.from(payloadOf(f));
    const slices = f.raw.map((p) => p.buffer);
    const parts = remask(f);
    // The payload parts are the frame's own memory: no copy.
    for (const p of parts.slice(1)) expect(slices).toContain(p.buffer);
    const again = readFrames(Buffer.concat(parts), 1 << 20, "client");
    expect(again.problem).toBeNull();
    const g = again.frames[0]!;
    expect(g.key).not.toBe(clientKey);
    expect(g.key).not.toBe(0);
    expect(payloadOf(g).equals(before)).toBe(true);
    expect(payloadOf(g).equals(payload)).toBe(true);
  });

  it("keeps a fragment's opcode and FIN bit: a message passed on in fragments stays one message", () => {
    const head = bytes(5);
    const rest = bytes(70_000);
    const input = Buffer.concat([rawClientFrame(Opcode.Binary, head, { fin: false }), rawClientFrame(Opcode.Continuation, rest)]);
    const { frames } = readFrames(input, 4096, "client");
    const out = Buffer.concat(frames.flatMap((f) => remask(f)));
    const again = readFrames(out, out.length, "client");
    expect(again.problem).toBeNull();
    expect(again.frames.map((g) => [g.opcode, g.fin])).toEqual([[Opcode.Binary, false], [Opcode.Continuation, true]]);
    expect(Buffer.concat(again.frames.map(payloadOf)).equals(Buffer.concat([head, rest]))).toBe(true);
  });
});

describe("close codes", () => {
  it.each([
    [1000, true],
    [1003, true],
    [1004, false],
    [1005, false],
    [1006, false],
    [1011, true],
    [1015, false],
    [2999, false],
    [3000, true],
    [4999, true],
    [5000, false],
  ])("%i valid: %s", (code, valid) => expect(isValidCloseCode(code)).toBe(valid));
});

describe("ClientSocket behind the gateway's handshake", () => {
  let server: Server;
  let url: string;
  const MAX = 64 * 1024;
  type Got = { kind: string; data?: Buffer; key?: number; frames?: number; code?: number; reason?: string };
  const sockets: Array<{ socket: ClientSocket; got: Got[]; batches: number[]; wait: (kind: string) => Promise<Got> }> = [];

  beforeAll(async () => {
    server = createServer((_req, res) => res.writeHead(426).end());
    server.on("upgrade", (req, socket: Socket, head) => {
      const client = acceptUpgrade(req, socket, head, MAX);
      if (!client) return;
      const got: Got[] = [];
      const batches: number[] = [];
      let inBatch = false;
      const waiters: Array<() => void> = [];
      const push = (g: Got) => {
        got.push(g);
        if (!inBatch) {
          inBatch = true;
          batches.push(0);
          queueMicrotask(() => (inBatch = false));
        }
        batches[batches.length - 1]!++;
        for (const w of waiters.splice(0)) w();
      };
      client.start({
        text: (data) => push({ kind: "text", data: Buffer.from(data) }),
        binary: (frames) => push({ kind: "binary", key: frames[0]!.key, frames: frames.length, data: Buffer.concat(frames.map((f) => Buffer.from(payloadOf(f)))) }),
        closed: (code, reason) => push({ kind: "closed", code, reason }),
      });
      let seen = 0;
      const wait = async (kind: string) => {
        for (;;) {
          const i = got.findIndex((g, j) => j >= seen && g.kind === kind);
          if (i >= 0) return (seen = i + 1), got[i]!;
          await new Promise<void>((r) => waiters.push(r));
        }
      };
      sockets.push({ socket: client, got, batches, wait });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.socket.terminate();
    await new Promise((r) => server.close(r));
  });

  async function wsClient(opts: ConstructorParameters<typeof WebSocket>[2] = {}) {
    const n = sockets.length;
    const ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
    await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
    while (sockets.length <= n) await new Promise((r) => setTimeout(r, 2));
    return { ws, ...sockets[n]! };
  }

  /** A raw TCP client past the handshake: writes any bytes, reads the server's frames and its close. */
  async function rawClient(headers: Record<string, string> = {}) {
    const n = sockets.length;
    const key = randomBytes(16).toString("base64");
    const tcp = connect(Number(new URL(url).port), "127.0.0.1");
    const lines = { Host: "x", Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": key, ...headers };
    tcp.write(`GET / HTTP/1.1\r\n${Object.entries(lines).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`);
    let buf = Buffer.alloc(0);
    let response = "";
    const frames: Frame[] = [];
    const reader = new FrameReader(1 << 20, (f) => frames.push(f), "server");
    let ended = false;
    tcp.on("data", (d: Buffer) => {
      if (!response) {
        buf = Buffer.concat([buf, d]);
        const at = buf.indexOf("\r\n\r\n");
        if (at < 0) return;
        response = buf.subarray(0, at).toString();
        d = buf.subarray(at + 4);
      }
      if (d.length) reader.push(d);
    });
    tcp.on("end", () => (ended = true));
    tcp.on("error", () => {});
    while (!response) await new Promise((r) => setTimeout(r, 2));
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
      expect(cond()).toBe(true);
    };
    const closeFrame = async () => {
      await until(() => frames.some((f) => f.opcode === Opcode.Close));
      const p = payloadOf(frames.find((f) => f.opcode === Opcode.Close)!);
      return { code: p.length >= 2 ? p.readUInt16BE(0) : null, reason: p.subarray(2).toString() };
    };
    return { tcp, response, frames, closeFrame, until, ended: () => ended, expectedAccept: createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64"), server: () => sockets[n] };
  }

  it("answers the handshake with no extension, even when permessage-deflate is offered", async () => {
    const c = await rawClient({ "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits" });
    expect(c.response).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(c.response).toContain(`Sec-WebSocket-Accept: ${c.expectedAccept}`);
    expect(c.response.toLowerCase()).not.toContain("sec-websocket-extensions");
    // A compressed frame (RSV1) is then a violation.
    c.tcp.write(rawClientFrame(Opcode.Text, Buffer.from("x"), { rsv: 0x40 }));
    expect((await c.closeFrame()).code).toBe(1002);
    c.tcp.destroy();
  });

  it.each([
    [{ "Sec-WebSocket-Version": "8" }, /^HTTP\/1\.1 426 .*\r\n[\s\S]*Sec-WebSocket-Version: 13/],
    [{ "Sec-WebSocket-Key": "short" }, /^HTTP\/1\.1 400 Bad Request: missing or invalid Sec-WebSocket-Key/],
    [{ Upgrade: "h2c" }, /^HTTP\/1\.1 400 Bad Request: Upgrade must be websocket/],
  ])("refuses a bad handshake (%o)", async (headers, pattern) => {
    const n = sockets.length;
    const c = await rawClient(headers);
    expect(c.response).toMatch(pattern);
    await c.until(() => c.ended());
    expect(sockets.length).toBe(n);
  });

  it("exchanges text and binary with a ws client; a binary message comes out as one masked frame", async () => {
    const { ws, wait, socket } = await wsClient();
    ws.send("héllo");
    expect((await wait("text")).data!.toString()).toBe("héllo");
    ws.send(bytes(70_000).subarray(0, 60_000));
    const b = await wait("binary");
    expect(b.key).not.toBe(0);
    expect(b.data!.equals(bytes(70_000).subarray(0, 60_000))).toBe(true);
    const received = new Promise<Array<[Buffer, boolean]>>((resolve) => {
      const all: Array<[Buffer, boolean]> = [];
      ws.on("message", (d: Buffer, binary) => all.push([d, binary]) === 3 && resolve(all));
    });
    socket.send("answer");
    socket.send(bytes(300));
    socket.sendFrame(serverFrame(Opcode.Binary, bytes(5)));
    const all = await received;
    expect(all.map(([d, bin]) => [d.toString("hex"), bin])).toEqual([
      [Buffer.from("answer").toString("hex"), false],
      [bytes(300).toString("hex"), true],
      [bytes(5).toString("hex"), true],
    ]);
    ws.close();
  });

  it("joins a text message's fragments (with a ping between them), answers the ping, and hands on a binary message's fragments as they came", async () => {
    const { ws, wait } = await wsClient();
    const pong = new Promise<Buffer>((r) => ws.once("pong", r));
    ws.send("ab", { fin: false });
    ws.ping(Buffer.from("are you there"));
    ws.send("cd", { fin: true });
    expect((await wait("text")).data!.toString()).toBe("abcd");
    expect((await pong).toString()).toBe("are you there");
    ws.send(bytes(10), { fin: false, binary: true });
    ws.send(bytes(20), { fin: true, binary: true });
    const b = await wait("binary");
    expect(b.frames).toBe(2);
    expect(b.data!.equals(Buffer.concat([bytes(10), bytes(20)]))).toBe(true);
    ws.close();
  });

  it("closes cleanly: the client's code is echoed and reported; the server ends the connection", async () => {
    const { ws, wait } = await wsClient();
    const closed = new Promise<[number, string]>((r) => ws.once("close", (code, reason) => r([code, reason.toString()])));
    ws.close(4000, "bye");
    expect(await wait("closed")).toMatchObject({ code: 4000, reason: "bye" });
    expect((await closed)[0]).toBe(4000);
  });

  it("closes from its side with a code and reason, and takes no more messages", async () => {
    const { ws, socket, got } = await wsClient();
    const closed = new Promise<[number, string]>((r) => ws.once("close", (code, reason) => r([code, reason.toString()])));
    socket.close(1001, "gateway shutting down");
    expect(socket.isOpen).toBe(false);
    socket.send("too late");
    expect(await closed).toEqual([1001, "gateway shutting down"]);
    expect(got.filter((g) => g.kind === "text")).toEqual([]);
  });

  it.each([
    ["an unmasked frame", 1002, () => rawClientFrame(Opcode.Text, Buffer.from("hi"), { key: null })],
    ["a message over the limit, in one frame", 1009, () => rawClientFrame(Opcode.Binary, bytes(MAX + 1))],
    ["a message over the limit, in fragments", 1009, () => Buffer.concat([rawClientFrame(Opcode.Binary, bytes(MAX), { fin: false }), rawClientFrame(Opcode.Continuation, bytes(1))])],
    // Within the byte limit, but each fragment is held until the last.
    ["a message in more fragments than MAX_FRAGMENTS", 1008, () => Buffer.concat([rawClientFrame(Opcode.Binary, Buffer.alloc(0), { fin: false }), ...Array.from({ length: MAX_FRAGMENTS }, () => rawClientFrame(Opcode.Continuation, Buffer.alloc(0), { fin: false }))])],
    ["text that is not UTF-8", 1007, () => rawClientFrame(Opcode.Text, Buffer.from([0x7b, 0xff, 0x7d]))],
    ["a continuation with nothing to continue", 1002, () => rawClientFrame(Opcode.Continuation, bytes(3))],
    ["a new message inside a fragmented one", 1002, () => Buffer.concat([rawClientFrame(Opcode.Text, Buffer.from("a"), { fin: false }), rawClientFrame(Opcode.Text, Buffer.from("b"))])],
    ["a close frame of one byte", 1002, () => rawClientFrame(Opcode.Close, Buffer.from([3]))],
    ["a close frame with code 1005", 1002, () => rawClientFrame(Opcode.Close, Buffer.from([0x03, 0xed]))],
    ["a close reason that is not UTF-8", 1007, () => rawClientFrame(Opcode.Close, Buffer.from([0x03, 0xe8, 0xff]))],
  ])("fails closed on %s: close code %i, then the connection ends", async (_what, code, frame) => {
    const c = await rawClient();
    c.tcp.write(frame());
    expect((await c.closeFrame()).code).toBe(code);
    await c.until(() => c.ended());
    const got = c.server()!.got;
    await c.until(() => got.some((g) => g.kind === "closed"));
    expect(got.filter((g) => g.kind !== "closed")).toEqual([]);
    c.tcp.destroy();
  });

  it("answers a close with no code with an empty close (1005 reported)", async () => {
    const c = await rawClient();
    c.tcp.write(rawClientFrame(Opcode.Close, Buffer.alloc(0)));
    expect((await c.closeFrame()).code).toBeNull();
    await c.until(() => c.ended());
    expect(await c.server()!.wait("closed")).toMatchObject({ code: 1005 });
    c.tcp.destroy();
  });

  it("while paused hands on nothing and reads no further; on resume, everything in order", async () => {
    const c = await rawClient();
    const s = c.server()!;
    s.socket.pause();
    c.tcp.write(Buffer.concat([1, 2, 3].map((i) => rawClientFrame(Opcode.Text, Buffer.from(`m${i}`)))));
    await new Promise((r) => setTimeout(r, 100));
    expect(s.got).toEqual([]);
    s.socket.resume();
    await c.until(() => s.got.length === 3);
    expect(s.got.map((g) => g.data!.toString())).toEqual(["m1", "m2", "m3"]);
    c.tcp.destroy();
  });

  it("takes a flood in turns: at most 32 messages of one read before the event loop moves on", async () => {
    const c = await rawClient();
    const s = c.server()!;
    c.tcp.write(Buffer.concat(Array.from({ length: 100 }, (_, i) => rawClientFrame(Opcode.Text, Buffer.from(`${i}`)))));
    await c.until(() => s.got.length === 100);
    expect(s.got.map((g) => g.data!.toString())).toEqual(Array.from({ length: 100 }, (_, i) => `${i}`));
    // Messages handed on in one synchronous run (no microtask checkpoint between them) form a batch.
    expect(s.batches).toEqual([32, 32, 32, 4]);
    c.tcp.destroy();
  });

  it("clientFrame's output reads back through the client-side reader", () => {
    const f = clientFrame(Opcode.Text, Buffer.from("same"));
    expect(payloadOf(readFrames(f, 1, "client").frames[0]!).toString()).toBe("same");
  });
});
