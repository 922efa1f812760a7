/**
 * Bound connections, from the SDK's side, against a fake daemon (a bare WebSocket server that
 * records each upgrade's URL and answers what a test scripts): which connections carry `bind`,
 * and what a gateway closing a bound connection for a lost host (code 4001) turns into — the
 * same errors the gateway's own answers give (packages/gateway/test/host-lost.integration.test.ts).
 */
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ErrorCodes, FrameOp, HOST_LOST_CLOSE, encodeFrame } from "@sbx/protocol";
import { ConnectionClosedError, RpcError, Sandbox, SandboxNotFoundError } from "../src/index.js";

const ID = "sbx_h1_x6Gm2K0cZ4bQ9pLrT8vW1yEd";
const info = (id: string) => ({ id, labels: {}, createdAt: new Date(0).toISOString(), expiresAt: null, status: "running" });

type Call = { id: number; method: string; params: any };
/** Answers a call (a result, an error), or null to leave it pending. */
type Script = (call: Call, ws: WebSocket) => { result?: unknown; error?: { code: number; message: string } } | null;

let server: WebSocketServer;
let base: string;
const upgrades: string[] = [];
const sockets: WebSocket[] = [];
const calls: Call[] = [];
let script: Script;

const defaults: Script = (call) => {
  switch (call.method) {
    case "sandbox.create":
      return { result: info(ID) };
    case "sandbox.connect":
      return call.params.id === ID ? { result: info(ID) } : { error: { code: ErrorCodes.SandboxNotFound, message: `no running sandbox '${call.params.id}'` } };
    case "sandbox.list":
      return { result: [] };
    case "sandbox.usage":
      return { result: { cpuSeconds: 0 } };
    default:
      return null;
  }
};

beforeAll(async () => {
  server = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((r) => server.once("listening", r));
  base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  server.on("connection", (ws, req) => {
    upgrades.push(req.url ?? "");
    sockets.push(ws);
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const call = JSON.parse(data.toString()) as Call;
      calls.push(call);
      const answer = script(call, ws);
      if (answer) ws.send(JSON.stringify({ jsonrpc: "2.0", id: call.id, ...answer }));
    });
  });
});
afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  await new Promise((r) => server?.close(r));
});
beforeEach(() => {
  upgrades.length = 0;
  calls.length = 0;
  script = defaults;
});

describe("which connections are bound", () => {
  const opts = () => ({ url: base, token: "t" });

  it("Sandbox.create binds with bind=new, keeping the url's path and query", async () => {
    const sb = await Sandbox.create({ url: `${base}/some/path?x=1`, token: "t" });
    expect(upgrades).toEqual(["/some/path?x=1&bind=new"]);
    expect(sb.id).toBe(ID);
    await sb.close();
  });

  it("Sandbox.connect binds with bind=<id>; an id no daemon makes goes unbound and is not found as ever", async () => {
    const sb = await Sandbox.connect(ID, opts());
    expect(upgrades).toEqual([`/?bind=${ID}`]);
    await sb.close();
    const err = await Sandbox.connect("nope", opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxNotFoundError);
    expect(upgrades[1]).toBe("/");
  });

  it("a bind given in the url is replaced by the sandbox's own", async () => {
    const sb = await Sandbox.connect({ id: ID, url: `${base}/?bind=new&y=2`, token: "t" });
    expect(upgrades).toEqual([`/?bind=${ID}&y=2`]);
    await sb.close();
  });

  it("calls not about one sandbox do not bind", async () => {
    await Sandbox.list(opts());
    await Sandbox.usageOf(ID, opts());
    expect(upgrades).toEqual(["/", "/"]);
  });

  it("everything a Sandbox sends on its bound connection names that sandbox", async () => {
    script = (call, ws) => defaults(call, ws) ?? (call.method === "env.toObject" ? { result: {} } : { result: null });
    const sb = await Sandbox.connect(ID, opts());
    await sb.env.toObject();
    await sb.extendTimeout("5m").catch(() => {});
    await sb.setAllowNet([]).catch(() => {});
    await sb.kill();
    for (const c of calls) expect([c.method, c.params.sandbox ?? c.params.id]).toEqual([c.method, ID]);
    expect(calls.map((c) => c.method)).toEqual(["sandbox.connect", "env.toObject", "sandbox.extendTimeout", "sandbox.setAllowNet", "sandbox.kill"]);
  });
});

describe("a gateway closes a bound connection with 4001 for a lost host", () => {
  const reason = "host lost: the sbx daemon ws://127.0.0.1:7071 closed the connection";

  it("pending calls reject as the gateway's own answers do, streams abort, process statuses resolve", async () => {
    let ws!: WebSocket;
    script = (call, socket) => {
      ws = socket;
      if (call.method === "fs.readFile") {
        setImmediate(() => socket.send(encodeFrame(FrameOp.Data, call.params.stream, new TextEncoder().encode("first"))));
        return { result: { size: 100 } };
      }
      if (call.method === "process.spawn") return { result: { pid: 7 } };
      return defaults(call, socket);
    };
    const sb = await Sandbox.connect(ID, { url: base, token: "t" });
    const reader = (await sb.fs.readFileStream("big")).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("first");
    const child = await sb.spawn("sleep", { args: ["60"] });
    const failure = (p: Promise<unknown>) => p.then(() => new Error("it succeeded"), (e: Error) => e);
    const stat = failure(sb.fs.stat("x"));
    const write = failure(sb.fs.writeFile("w", new ReadableStream({ start: (c) => c.enqueue(new Uint8Array(10)) })));
    while (calls.filter((c) => c.method === "fs.stat" || c.method === "fs.writeFile").length < 2) await new Promise((r) => setTimeout(r, 5));

    ws.send(JSON.stringify({ jsonrpc: "2.0", method: "sandbox.exit", params: { id: ID, reason: "error", message: reason } }));
    ws.close(HOST_LOST_CLOSE, reason);

    const [statErr, writeErr, readErr, status] = await Promise.all([stat, write, reader.read().then(() => new Error("read on"), (e: Error) => e), child.status]);
    expect(statErr).toBeInstanceOf(RpcError);
    expect((statErr as RpcError).rpcCode).toBe(ErrorCodes.Unavailable);
    expect(statErr.message).toBe("host lost during fs.stat: the sbx daemon ws://127.0.0.1:7071 closed the connection");
    expect(writeErr).toBeInstanceOf(RpcError);
    expect((writeErr as RpcError).rpcCode).toBe(ErrorCodes.Unavailable);
    expect(writeErr.message).toBe("host lost during fs.writeFile: the sbx daemon ws://127.0.0.1:7071 closed the connection");
    expect(readErr.message).toBe(`stream aborted: ${reason}`);
    expect(status).toMatchObject({ success: false, signal: "SIGKILL" });
    // Later calls: the sandbox is gone, as after the gateway's own sandbox.exit.
    expect(await sb.fs.stat("x").catch((e: unknown) => e)).toBeInstanceOf(SandboxNotFoundError);
  });

  it("any other close still rejects pending calls with ConnectionClosedError", async () => {
    let ws!: WebSocket;
    script = (call, socket) => ((ws = socket), defaults(call, socket));
    const sb = await Sandbox.connect(ID, { url: base, token: "t" });
    const stat = sb.fs.stat("x").catch((e: Error) => e);
    while (!calls.some((c) => c.method === "fs.stat")) await new Promise((r) => setTimeout(r, 5));
    ws.close(1011, "daemon stopping");
    const err = await stat;
    expect(err).toBeInstanceOf(ConnectionClosedError);
    expect((err as ConnectionClosedError).closeCode).toBe(1011);
  });
});
