import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { DaemonSocket, type DaemonSocketEvents } from "../src/net/daemon-socket.js";
import { clientFrame, FrameReader, Opcode, payloadByte, payloadOf, serverFrame, type Frame } from "../src/net/frames.js";
import { answerId, notificationMethod } from "../src/session/upstream.js";

const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));

function readAll(input: Buffer, chunkSize: number, maxPayload = 1 << 20): { frames: Frame[]; problem: string | null } {
  const frames: Frame[] = [];
  const reader = new FrameReader(maxPayload, (f) => frames.push(f));
  let problem: string | null = null;
  for (let i = 0; i < input.length && !problem; i += chunkSize) problem = reader.push(input.subarray(i, i + chunkSize))?.message ?? null;
  return { frames, problem };
}

describe("FrameReader", () => {
  const payloads = [bytes(0), bytes(5), bytes(125), bytes(126), bytes(65535), bytes(65536), bytes(200_000)];
  const stream = Buffer.concat(payloads.flatMap((p, i) => serverFrame(i % 2 ? Opcode.Text : Opcode.Binary, p)));

  it.each([1, 3, 7, 4096, 65536, stream.length])("splits a stream read %i bytes at a time into its frames, bytes unchanged", (chunk) => {
    const { frames, problem } = readAll(stream, chunk);
    expect(problem).toBeNull();
    expect(frames.map((f) => f.payloadLength)).toEqual(payloads.map((p) => p.length));
    frames.forEach((f, i) => {
      expect(f.fin).toBe(true);
      expect(f.opcode).toBe(i % 2 ? Opcode.Text : Opcode.Binary);
      expect(payloadOf(f).equals(payloads[i]!)).toBe(true);
      if (f.payloadLength > 4) expect(payloadByte(f, 4)).toBe(payloads[i]![4]);
    });
    // The frames' raw bytes, laid end to end, are the stream as read.
    expect(Buffer.concat(frames.flatMap((f) => f.raw)).equals(stream)).toBe(true);
  });

  it.each([
    ["a masked frame", Buffer.from([0x82, 0x80 | 1, 0, 0, 0, 0, 9]), /masked/],
    ["reserved bits", Buffer.from([0xc2, 1, 9]), /reserved bits/],
    ["an oversized control frame", Buffer.concat([Buffer.from([0x89, 126, 0, 126]), bytes(126)]), /control frame/],
    ["a fragmented control frame", Buffer.from([0x09, 0]), /control frame/],
    ["an unknown opcode", Buffer.from([0x83, 0]), /unknown opcode 3/],
  ])("refuses %s", (_what, input, pattern) => {
    const { frames, problem } = readAll(input, 1);
    expect(frames).toEqual([]);
    expect(problem).toMatch(pattern);
  });

  it("refuses a payload over the limit from its header alone, before it arrives", () => {
    const reader = new FrameReader(1000, () => expect.fail("no frame"));
    expect(reader.push(Buffer.from([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]))).toEqual({ code: 1009, message: "a 4294967296-byte frame, over the 1000-byte limit" });
  });
});

describe("clientFrame", () => {
  it.each([0, 5, 125, 126, 65535, 65536, 200_000])("masks a %i-byte payload with a fresh key each frame, as RFC 6455 says", (n) => {
    const payload = bytes(n);
    const a = clientFrame(Opcode.Binary, payload);
    const b = clientFrame(Opcode.Binary, payload);
    const header = n < 126 ? 2 : n < 65536 ? 4 : 10;
    expect(a[0]).toBe(0x82);
    expect(a[1]! & 0x80).toBe(0x80);
    expect(a.length).toBe(header + 4 + n);
    expect(a.subarray(header, header + 4).equals(b.subarray(header, header + 4))).toBe(false);
    const mask = a.subarray(header, header + 4);
    const unmasked = Buffer.from(a.subarray(header + 4).map((x, i) => x ^ mask[i & 3]!));
    expect(unmasked.equals(payload)).toBe(true);
  });
});

describe("answerId and notificationMethod read a daemon's message without parsing it", () => {
  it.each([
    ['{"jsonrpc":"2.0","id":7,"result":{}}', 7],
    ['{"jsonrpc":"2.0","id":-12,"error":{"code":1,"message":"x"}}', -12],
    ['{"jsonrpc":"2.0","id":0,"result":null}', 0],
    ['{"jsonrpc":"2.0","id":"7","result":{}}', null], // a string id: parsed instead
    ['{"jsonrpc":"2.0","id":07,"result":{}}', null],
    ['{"jsonrpc":"2.0","id":7.5,"result":{}}', null],
    ['{"jsonrpc":"2.0","id":1234567890123456,"result":{}}', null], // past 15 digits
    ['{"id":7,"jsonrpc":"2.0","result":{}}', null], // another key order: parsed instead
    ['{"jsonrpc":"2.0","id":', null],
  ])("%s → %s", (text, id) => {
    expect(answerId(text)?.id ?? null).toBe(id);
  });

  it("finds where the id ends, so a remapped id is spliced in", () => {
    const text = '{"jsonrpc":"2.0","id":-3,"result":{"pid":1}}';
    expect(text.slice(answerId(text)!.end)).toBe(',"result":{"pid":1}}');
  });

  it.each([
    ['{"jsonrpc":"2.0","method":"process.exit","params":{}}', "process.exit"],
    ['{"jsonrpc":"2.0","method":"sandbox.exit","params":{"id":"x"}}', "sandbox.exit"],
    ['{"method":"sandbox.exit","jsonrpc":"2.0"}', null],
    ['{"jsonrpc":"2.0","method":"unterminated', null],
  ])("%s → %s", (text, method) => {
    expect(notificationMethod(text)).toBe(method);
  });
});

describe("DaemonSocket against a ws server", () => {
  let server: Server;
  let wss: WebSocketServer;
  let url: string;
  const peers: WebSocket[] = [];

  beforeAll(async () => {
    server = createServer((_req, res) => res.writeHead(401).end());
    wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    server.on("upgrade", (req, socket, head) => {
      if (req.headers.authorization !== "Bearer good") return socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
      wss.handleUpgrade(req, socket, head, (ws) => peers.push(ws));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const p of peers) p.terminate();
    await new Promise((r) => server.close(r));
  });

  type Event = [string, ...unknown[]];
  function open(token: string, maxPayload = 1 << 20): { socket: DaemonSocket; events: Event[]; next: (kind: string) => Promise<Event> } {
    const events: Event[] = [];
    const waiters: Array<() => void> = [];
    const push = (e: Event) => {
      events.push(e);
      for (const w of waiters.splice(0)) w();
    };
    const handlers: DaemonSocketEvents = {
      open: () => push(["open"]),
      text: (text, raw) => push(["text", text, raw && Buffer.concat(raw)]),
      binary: (raw, op, stream) => push(["binary", Buffer.concat(raw), op, stream]),
      refused: (status) => push(["refused", status]),
      ended: (code, reason, error) => push(["ended", code, reason, error?.message ?? null]),
    };
    const socket = new DaemonSocket(url, { Authorization: `Bearer ${token}` }, maxPayload, 5000, handlers);
    let seen = 0;
    const next = async (kind: string): Promise<Event> => {
      for (;;) {
        const i = events.findIndex((e, j) => j >= seen && e[0] === kind);
        if (i >= 0) {
          seen = i + 1;
          return events[i]!;
        }
        await new Promise<void>((r) => waiters.push(r));
      }
    };
    return { socket, events, next };
  }
  const peer = async (before: number) => {
    while (peers.length <= before) await new Promise((r) => setTimeout(r, 5));
    return peers[before]!;
  };

  it("exchanges text and binary; a daemon's frame comes out as the bytes it sent", async () => {
    const n = peers.length;
    const { socket, next } = open("good");
    await next("open");
    const ws = await peer(n);
    const got = new Promise<Array<[Buffer, boolean]>>((resolve) => {
      const all: Array<[Buffer, boolean]> = [];
      ws.on("message", (d: Buffer, binary) => all.push([d, binary]) === 2 && resolve(all));
    });
    socket.send('{"jsonrpc":"2.0","id":1,"method":"x"}');
    socket.send(bytes(70_000));
    const all = await got;
    const [text, textBinary] = all[0]!;
    const [bin, binBinary] = all[1]!;
    expect([text.toString(), textBinary]).toEqual(['{"jsonrpc":"2.0","id":1,"method":"x"}', false]);
    expect(binBinary).toBe(true);
    expect(bin.equals(bytes(70_000))).toBe(true);

    ws.send("héllo");
    const [, t, raw] = await next("text");
    expect(t).toBe("héllo");
    expect((raw as Buffer).equals(Buffer.concat(serverFrame(Opcode.Text, Buffer.from("héllo"))))).toBe(true);
    const frame = Buffer.concat([Buffer.from([3, 0, 0, 1, 2]), bytes(100_000)]);
    ws.send(frame);
    const [, b, op, stream] = await next("binary");
    expect([op, stream]).toEqual([3, 0x102]);
    expect((b as Buffer).equals(Buffer.concat(serverFrame(Opcode.Binary, frame)))).toBe(true);
    socket.close(1000, "done");
    expect(await next("ended")).toEqual(["ended", 1000, "done", null]); // ws echoes the reason
  });

  it("joins a fragmented message, answers pings, and reports the daemon's close code and reason", async () => {
    const n = peers.length;
    const { next } = open("good");
    await next("open");
    const ws = await peer(n);
    ws.send("ab", { fin: false });
    ws.send("cd", { fin: true });
    const [, text, raw] = await next("text");
    expect([text, raw]).toEqual(["abcd", null]);
    const pong = new Promise<Buffer>((r) => ws.once("pong", r));
    ws.ping(Buffer.from("are you there"));
    expect((await pong).toString()).toBe("are you there");
    ws.close(1008, "bad frame");
    expect(await next("ended")).toEqual(["ended", 1008, "bad frame", null]);
  });

  it("reports a refused token as the HTTP status, and nothing else", async () => {
    const { next, events } = open("bad");
    expect(await next("refused")).toEqual(["refused", 401]);
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toEqual([["refused", 401]]);
  });

  it("drops a daemon that sends a message over the limit", async () => {
    const n = peers.length;
    const { next } = open("good", 1000);
    await next("open");
    (await peer(n)).send(bytes(1001));
    const [, code, , error] = await next("ended");
    expect(code).toBe(1006);
    expect(error).toMatch(/1001-byte frame, over the 1000-byte limit/);
  });

  it("reports a connection that cannot be made", async () => {
    const events: unknown[] = [];
    const socket = new DaemonSocket("ws://127.0.0.1:1", {}, 1000, 5000, {
      open: () => events.push("open"),
      text: () => {},
      binary: () => {},
      refused: () => events.push("refused"),
      ended: (code, _r, error) => events.push([code, error?.message]),
    });
    while (events.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(events).toEqual([[1006, expect.stringMatching(/ECONNREFUSED/)]]);
    socket.terminate();
  });
});
