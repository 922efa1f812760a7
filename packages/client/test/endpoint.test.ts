import { createServer, type Server } from "node:net";
import { userInfo } from "node:os";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectionError, Sandbox } from "../src/index.js";
import { portOwner } from "../src/endpoint.js";

describe("a URL without ws:// or wss://", () => {
  const saved = process.env.SBX_URL;
  afterEach(() => {
    if (saved === undefined) delete process.env.SBX_URL;
    else process.env.SBX_URL = saved;
  });

  it.each([
    ["127.0.0.1:7070", " (did you mean ws://127.0.0.1:7070?)"],
    ["localhost:7070", " (did you mean ws://localhost:7070?)"], // a valid URL with scheme "localhost:"
    ["http://127.0.0.1:7070", ""],
    ["ws://", ""],
  ])("in SBX_URL (%s) is a ConnectionError naming SBX_URL", async (url, guess) => {
    process.env.SBX_URL = url;
    const err = await Sandbox.list({ token: "t" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toBe(`SBX_URL must be a ws:// or wss:// URL, got '${url}'${guess}`);
  });

  it("in the url option is a ConnectionError naming the option", async () => {
    const err = await Sandbox.connect("sbx_x", { url: "[::1]:7070", token: "t" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toBe("the url option must be a ws:// or wss:// URL, got '[::1]:7070' (did you mean ws://[::1]:7070?)");
  });
});

describe("portOwner", () => {
  let server: Server | null = null;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  it("finds the uid and pid listening on a local port (here: this process)", async () => {
    server = createServer();
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    expect(portOwner(port)).toEqual({ uid: process.getuid!(), user: userInfo().username, pid: process.pid });
  });

  it("is null for a port nobody listens on", async () => {
    server = createServer();
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server!.close(() => r()));
    server = null;
    expect(portOwner(port)).toBeNull();
  });
});
