import { createServer, type IncomingMessage, type Server } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { parseBind } from "@sbx/protocol";
import type { SandboxManager } from "../sandbox/manager.js";
import type { Logger } from "../util/log.js";
import { bearerOf, type Tokens } from "./auth.js";
import { Connection, type ConnectionLimits } from "./connection.js";
import { createRpcServer } from "./handlers.js";
import { SendQueues } from "./backpressure.js";
import type { HostState } from "../fleet/host-state.js";
import type { ImageBuilder } from "../volumes/build.js";

/**
 * Largest WebSocket message accepted: JSON calls (a spawn's arguments and environment are at
 * most 1 MiB; file contents travel in stream frames of at most 256 KiB).
 */
export const MAX_MESSAGE = 2 << 20;

/** Answers an upgrade with an HTTP error; the status line's reason is `reason`, the body `detail` (default the same). */
function refuse(socket: Duplex, status: number, reason: string, detail = reason): void {
  const body = `${detail}\n`;
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

/**
 * The daemon's HTTP listener. Only WebSocket upgrades are served, and only after the bearer
 * token checks out; requests carrying a browser Origin are refused so that no web page can
 * drive the daemon.
 */
export function createApiServer(opts: { manager: SandboxManager; host: HostState; tokens: Tokens; limits: ConnectionLimits; log: Logger; images?: ImageBuilder | null }): Server {
  const { manager, tokens, limits, log } = opts;
  const rpc = createRpcServer(manager, opts.host, log, opts.images ?? null);
  const queues = new SendQueues();
  // One message per event-loop turn per connection: a client with a thousand calls queued takes turns with everyone else.
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE, perMessageDeflate: false, allowSynchronousEvents: false });
  const server = createServer((req, res) => {
    res.writeHead(426, { "Content-Type": "text/plain", Upgrade: "websocket" }).end("sbx daemon: connect with a WebSocket client and a bearer token\n");
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {});
    if (req.headers.origin !== undefined) return refuse(socket, 403, "Forbidden: browser origins may not connect");
    const token = bearerOf(req.headers.authorization);
    const owner = token ? tokens.ownerOf(token) : null;
    if (!owner) return refuse(socket, 401, "Unauthorized");
    // The path is not looked at; the query may bind the connection to one sandbox (the value, user text, stays out of the status line).
    const binding = parseBind(req.url ?? "/");
    if ("problem" in binding) return refuse(socket, 400, "Bad Request", binding.problem);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const { queue, json, release } = queues.forConnection(owner);
      new Connection(ws, owner, manager, rpc, limits, log, queue, json, release, tokens.nameOf(owner), binding);
    });
  });
  return server;
}
