import { createHash } from "node:crypto";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { afterEach, describe, expect, it } from "vitest";
import { Sandbox } from "../src/index.js";
import { isLoopbackUrl, maskingFor } from "../src/endpoint.js";

/**
 * A TCP server that accepts one WebSocket upgrade and reports the masking key of the first frame
 * the client sends (a `Sandbox.list` call's JSON-RPC request), as the bytes on the wire hold it.
 */
async function firstMaskingKey(host: string, listenOn: string): Promise<Buffer> {
  const server = createServer();
  servers.push(server);
  const key = new Promise<Buffer>((resolve, reject) => {
    server.on("connection", (socket: Socket) => {
      let buf = Buffer.alloc(0);
      let upgraded = false;
      socket.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (!upgraded) {
          const end = buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          const wsKey = /sec-websocket-key: *(\S+)/i.exec(buf.subarray(0, end).toString("latin1"))?.[1];
          if (!wsKey) return reject(new Error("no Sec-WebSocket-Key in the upgrade request"));
          const accept = createHash("sha1").update(`${wsKey}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
          socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
          upgraded = true;
          buf = buf.subarray(end + 4);
        }
        if (buf.length < 2) return;
        if (!(buf[1]! & 0x80)) return reject(new Error("the client sent an unmasked frame"));
        const len7 = buf[1]! & 0x7f;
        const at = len7 < 126 ? 2 : len7 === 126 ? 4 : 10;
        if (buf.length < at + 4) return;
        resolve(Buffer.from(buf.subarray(at, at + 4)));
        socket.destroy();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, listenOn, resolve));
  const { port } = server.address() as AddressInfo;
  await Sandbox.list({ url: `ws://${host}:${port}`, token: "t" }).catch(() => {});
  return key;
}

const servers: ReturnType<typeof createServer>[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** An IPv4 address of this machine that is not loopback, if it has one. */
const outside = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === "IPv4" && !a.internal)?.address;

describe("what the client sends is masked (RFC 6455 §5.3)", () => {
  it("with the key 0 to a daemon on loopback: nothing on the way reads it", async () => {
    expect([...(await firstMaskingKey("127.0.0.1", "127.0.0.1"))]).toEqual([0, 0, 0, 0]);
  });

  it.skipIf(!outside)("with a random key over plain ws:// to any other address", async () => {
    const keys = [await firstMaskingKey(outside!, "0.0.0.0"), await firstMaskingKey(outside!, "0.0.0.0")];
    expect(keys[0]!.readUInt32BE()).not.toBe(0);
    expect(keys[0]!.equals(keys[1]!)).toBe(false);
  });

  it("with the key 0 inside TLS, random for a plain name that only starts like loopback", () => {
    const zero = Buffer.alloc(4, 0xff);
    maskingFor("wss://sbx.example.com/")!(zero);
    expect([...zero]).toEqual([0, 0, 0, 0]);
    for (const url of ["ws://localhost:7070", "ws://127.0.0.9:1", "ws://[::1]:7070"]) expect(maskingFor(url)).toBeDefined();
    for (const url of ["ws://127.attacker.example:7070", "ws://10.0.0.1:7070", "ws://sbx.example.com"]) expect(maskingFor(url)).toBeUndefined();
    expect(isLoopbackUrl("ws://127.attacker.example:7070")).toBe(false);
  });
});
