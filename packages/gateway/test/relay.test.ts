/**
 * `sbx-gateway-relay` on its own (native/relay.c), driven as the gateway drives it: sockets
 * handed over its Node IPC channel. A loopback "client" and "daemon" stand on either side, so
 * every ending is exact: what the client gets when the daemon goes at a frame boundary (the
 * farewell), mid-frame (cut off), after its own close frame (nothing added), when the gateway
 * loses the host, and when the client leaves; bytes read before the handover go first; bytes that
 * are not WebSocket framing end it; a client that does not read holds the relay's memory flat;
 * malformed messages from the gateway are ignored; "bye" lets every connection go with 1001.
 * Plus the wire code's own C tests.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";

const NATIVE = fileURLToPath(new URL("../native", import.meta.url));
const BINARY = fileURLToPath(new URL("../dist/sbx-gateway-relay", import.meta.url));

let relay: ChildProcess;
let stderr = "";
const reports: string[] = [];
let server: Server;
let nextId = 1;

beforeAll(async () => {
  relay = spawn(BINARY, [], { stdio: ["ignore", "ignore", "pipe", "ipc"], serialization: "json" });
  relay.stderr!.on("data", (d) => (stderr += d));
  relay.on("message", (m) => reports.push(String(m)));
  server = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
});
afterAll(() => {
  relay?.kill("SIGKILL");
  server?.close();
});

const b64 = (s: string | Buffer) => (s.length === 0 ? "-" : Buffer.from(s).toString("base64"));

/** A TCP connection through the loopback server: the end we keep, and the end the relay gets. */
async function pair(): Promise<{ near: Socket; far: Socket }> {
  const accepted = new Promise<Socket>((r) => server.once("connection", r));
  const near = connect((server.address() as { port: number }).port, "127.0.0.1");
  const far = await accepted;
  await new Promise((r) => (near.connecting ? near.once("connect", r) : r(null)));
  return { near, far };
}

function send(message: string, socket?: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const handle = socket ? ((socket as unknown as { _handle: object })._handle as never) : undefined;
    relay.send(message, handle, (err) => {
      if (err) return reject(err);
      socket?.destroy();
      resolve();
    });
  });
}

/** A relayed connection: `client` and `daemon` are the peers' ends, as the outside world has them. */
async function relayed(opts: { clientHead?: Buffer; daemonHead?: Buffer; exit?: string; reason?: string } = {}) {
  const id = nextId++;
  const c = await pair();
  const d = await pair();
  await send(`client ${id} ${b64(opts.clientHead ?? "")}`, c.far);
  await send(`daemon ${id} ${b64(opts.daemonHead ?? "")} ${b64(opts.exit ?? '{"bye":1}')} ${b64(opts.reason ?? "host lost: test")}`, d.far);
  return { id, client: c.near, daemon: d.near };
}

/** Everything a socket receives until it ends. */
function collect(s: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on("data", (d) => parts.push(d));
  return new Promise((resolve) => s.once("close", () => resolve(Buffer.concat(parts))));
}

function received(s: Socket, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let have = 0;
  return new Promise((resolve) => {
    const on = (d: Buffer) => {
      parts.push(d);
      have += d.length;
      if (have >= n) {
        s.off("data", on);
        resolve(Buffer.concat(parts));
      }
    };
    s.on("data", on);
  });
}

/** An unmasked (server) frame. */
function frame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n <= 0xffff ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff]) : Buffer.concat([Buffer.from([0x80 | opcode, 127]), bigLength(n)]);
  return Buffer.concat([head, payload]);
}
function bigLength(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
const closeFrame = (code: number, reason: string) => {
  const p = Buffer.alloc(2 + Buffer.byteLength(reason));
  p.writeUInt16BE(code, 0);
  p.write(reason, 2);
  return frame(8, p);
};

async function report(id: number): Promise<string> {
  const end = Date.now() + 5000;
  for (;;) {
    const r = reports.find((m) => m.startsWith(`closed ${id} `));
    if (r) return r.slice(`closed ${id} `.length);
    if (Date.now() > end) throw new Error(`no report for connection ${id}: ${reports.join(", ")}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

it("make test passes: the wire code's unit tests and a fuzz of the frame tracker, under ASan and UBSan", () => {
  const r = spawnSync("make", ["-C", NATIVE, "--no-print-directory", "test"], { encoding: "utf8", timeout: 120_000 });
  const out = `${r.stdout}\n${r.stderr}`;
  expect(r.status, out).toBe(0);
  expect(out).toMatch(/^wire: all checks passed$/m);
  expect(out).toMatch(/^fuzzed the frame tracker: [1-9]\d* runs/m);
}, 120_000);

it("passes bytes both ways, what each side sent before the handover first", async () => {
  const head = frame(1, Buffer.from('{"early":true}'));
  const { id, client, daemon } = await relayed({ clientHead: Buffer.from("client-early "), daemonHead: head });
  const atDaemon = received(daemon, "client-early then more".length);
  const atClient = received(client, head.length + 5);
  client.write("then more");
  daemon.write(frame(2, Buffer.from("abc")));
  expect((await atDaemon).toString()).toBe("client-early then more");
  expect(await atClient).toEqual(Buffer.concat([head, frame(2, Buffer.from("abc"))]));
  // The client leaves: the daemon sees its FIN, the relay reports it.
  const daemonEnd = new Promise((r) => daemon.once("end", r));
  client.end();
  await daemonEnd;
  daemon.end();
  expect(await report(id)).toBe("client");
});

it("a daemon gone between two frames: the client gets the farewell (the exit text, close 4001 with the reason), then the end", async () => {
  const { id, client, daemon } = await relayed({ exit: '{"method":"sandbox.exit"}', reason: "host lost: the daemon went" });
  const all = collect(client);
  const last = frame(2, Buffer.alloc(70_000, 7)); // over 65535 bytes: the 8-byte length form
  daemon.end(last);
  // The client answers the close and leaves, as a WebSocket client does on the server's FIN.
  client.once("end", () => client.end());
  expect(await all).toEqual(Buffer.concat([last, frame(1, Buffer.from('{"method":"sandbox.exit"}')), closeFrame(4001, "host lost: the daemon went")]));
  expect(await report(id)).toBe("lost");
});

it("a daemon gone mid-frame: the client is cut off after what arrived, with nothing added", async () => {
  const { id, client, daemon } = await relayed();
  const all = collect(client);
  const whole = frame(2, Buffer.alloc(1000, 1));
  daemon.end(whole.subarray(0, 600));
  client.once("end", () => client.end());
  expect(await all).toEqual(whole.subarray(0, 600));
  expect(await report(id)).toBe("cut");
});

it("a daemon that closes after its own close frame: the client gets that frame and nothing more", async () => {
  const { id, client, daemon } = await relayed();
  const all = collect(client);
  daemon.end(closeFrame(1008, "policy"));
  client.once("end", () => client.end());
  expect(await all).toEqual(closeFrame(1008, "policy"));
  expect(await report(id)).toBe("daemon");
});

it("the gateway loses the host: the client gets the farewell it names, the daemon's side is closed", async () => {
  const { id, client, daemon } = await relayed();
  const all = collect(client);
  const daemonClosed = new Promise((r) => daemon.once("end", r));
  const first = frame(1, Buffer.from("before"));
  const got = received(client, first.length);
  daemon.write(first);
  await got;
  await send(`lose ${id} ${b64('{"lost":true}')} ${b64("host lost: the sbx daemon d1 went away (no ping)")}`);
  await daemonClosed;
  client.once("end", () => client.end());
  expect(await all).toEqual(Buffer.concat([first, frame(1, Buffer.from('{"lost":true}')), closeFrame(4001, "host lost: the sbx daemon d1 went away (no ping)")]));
  expect(await report(id)).toBe("lost");
  daemon.destroy();
});

it("bye (the gateway shutting down): each client gets close 1001 between two frames, each daemon connection closes", async () => {
  const a = await relayed();
  const b = await relayed();
  const all = [collect(a.client), collect(b.client)];
  const daemonsClosed = [a, b].map((x) => new Promise((r) => x.daemon.once("end", r)));
  const partial = frame(2, Buffer.alloc(100, 9));
  const got = received(a.client, partial.length);
  a.daemon.write(partial);
  await got;
  await send("bye");
  await Promise.all(daemonsClosed);
  for (const x of [a, b]) x.client.once("end", () => x.client.end());
  const [atA, atB] = await Promise.all(all);
  expect(atA).toEqual(Buffer.concat([partial, closeFrame(1001, "gateway shutting down")]));
  expect(atB).toEqual(closeFrame(1001, "gateway shutting down"));
  expect(await report(a.id)).toBe("bye");
  expect(await report(b.id)).toBe("bye");
  a.daemon.destroy();
  b.daemon.destroy();
});

it("bytes from the daemon that are not WebSocket framing end the connection", async () => {
  const { id, client, daemon } = await relayed();
  const all = collect(client);
  daemon.write(Buffer.from([0x83, 0x00])); // a reserved opcode
  await all;
  expect(await report(id)).toBe("error");
  daemon.destroy();
});

it("large payloads (spliced) and small messages (copied) interleaved reach a slow client byte for byte, in order", async () => {
  const { id, client, daemon } = await relayed();
  const frames: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    const big = i % 3 !== 2;
    frames.push(frame(big ? 2 : 1, big ? randomBytes(20_000 + ((i * 7919) % 300_000)) : Buffer.from(`{"n":${i}}`)));
  }
  const all = Buffer.concat(frames);
  const got: Buffer[] = [];
  let have = 0;
  const done = new Promise<void>((resolve) => {
    client.on("data", (d) => {
      got.push(d);
      have += d.length;
      // A slow reader: it pauses now and then, so the relay's socket to it fills and its pipe holds bytes.
      if (got.length % 5 === 0) {
        client.pause();
        setTimeout(() => client.resume(), 5);
      }
      if (have >= all.length) resolve();
    });
  });
  // Written in odd pieces, so frames start and end anywhere in the daemon's writes.
  for (let at = 0; at < all.length; ) {
    const n = Math.min(all.length - at, 1 + ((at * 31) % 90_000));
    daemon.write(all.subarray(at, at + n));
    at += n;
  }
  await done;
  expect(Buffer.concat(got).equals(all)).toBe(true);
  // And the frame tracker followed it all: a farewell now comes between two frames.
  const rest = collect(client);
  daemon.end();
  client.once("end", () => client.end());
  expect(await rest).toEqual(Buffer.concat([frame(1, Buffer.from('{"bye":1}')), closeFrame(4001, "host lost: test")]));
  expect(await report(id)).toBe("lost");
}, 30_000);

it("a client that does not read: the relay stops reading its daemon, and its memory stays flat", async () => {
  const { id, client, daemon } = await relayed();
  client.pause();
  const chunk = frame(2, Buffer.alloc(65536 - 10, 3));
  let written = 0;
  // Write until the daemon's socket refuses more for a while: the relay has stopped taking.
  for (let stalled = 0; stalled < 5 && written < 512 << 20; ) {
    if (daemon.write(chunk)) written += chunk.length;
    else {
      written += chunk.length;
      const drained = await Promise.race([new Promise((r) => daemon.once("drain", () => r(true))), new Promise((r) => setTimeout(() => r(false), 200))]);
      if (!drained) stalled++;
    }
  }
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${relay.pid}/status`, "utf8"))![1]) * 1024;
  // Stuck in kernel buffers (a few MB at most), not in the relay.
  expect(written).toBeLessThan(64 << 20);
  expect(rss).toBeLessThan(8 << 20);
  // And all of it arrives, in order, once the client reads.
  const got = received(client, written);
  client.resume();
  const bytes = await got;
  for (let at = 0; at < written; at += chunk.length) expect(bytes.subarray(at, at + 2)).toEqual(chunk.subarray(0, 2));
  client.destroy();
  daemon.destroy();
  expect(["client", "lost"]).toContain(await report(id));
});

it("a client that sends and resets before its daemon side arrives: nothing is read early, the relay lives on", async () => {
  const id = nextId++;
  const c = await pair();
  await send(`client ${id} -`, c.far);
  c.near.write("early bytes");
  c.near.resetAndDestroy();
  await new Promise((r) => setTimeout(r, 100));
  const d = await pair();
  const daemonGot = collect(d.near);
  await send(`daemon ${id} - ${b64("{}")} ${b64("host lost: x")}`, d.far);
  expect(["client"]).toContain(await report(id));
  d.near.end();
  await daemonGot; // whatever it got, the relay carried on:
  expect(relay.exitCode).toBeNull();
  const { id: next, client, daemon } = await relayed();
  const got = received(daemon, 2);
  client.write("ok");
  expect((await got).toString()).toBe("ok");
  client.destroy();
  daemon.destroy();
  await report(next);
});

it("a side the gateway could not hand over: drop ends the other, and every refused side is reported", async () => {
  const id = nextId++;
  const c = await pair();
  const ended = collect(c.near);
  await send(`client ${id} -`, c.far);
  await send(`drop ${id}`);
  await ended;
  expect(await report(id)).toBe("error");
  // A daemon side for no client side: refused, and reported so the gateway stops counting it.
  await send("daemon 424242 - - -", (await pair()).far);
  expect(await report(424242)).toBe("error");
});

it("ignores malformed messages from the gateway and goes on", async () => {
  await send("nonsense");
  await send("lose 999999 !!! ???");
  await send("daemon 424243 - - -", (await pair()).far); // a daemon side for no client side
  const { id, client, daemon } = await relayed();
  const got = received(daemon, 5);
  client.write("still");
  expect((await got).toString()).toBe("still");
  expect(stderr).toMatch(/ignored a malformed message from the gateway \(nonsense\)/);
  expect(stderr).toMatch(/ignored a malformed message from the gateway \(lose\)/);
  expect(stderr).toMatch(/ignored a malformed message from the gateway \(daemon side of an unknown connection\)/);
  client.destroy();
  daemon.destroy();
  await report(id);
});
