import { createServer, type IncomingMessage, type Server } from "node:http";
import { parseBind } from "@sbx/protocol";
import type { Socket } from "node:net";
import type { Fleet } from "../fleet/fleet.js";
import type { Logger } from "../log.js";
import { ByteBudget, MARKS } from "../net/budget.js";
import { Session, type SessionLimits } from "../session/session.js";
import { bearerOf, type Tokens } from "./tokens.js";
import { acceptUpgrade, refuse } from "./upgrade.js";
import type { NativeRelay } from "../net/native-relay.js";

/** Largest message accepted from a client: the daemon's own bound (calls of at most 2 MiB). */
export const MAX_MESSAGE = 2 << 20;

export interface ServerOptions {
  fleet: Fleet;
  /** Where bound connections go once routed; null keeps them on the gateway's own path. */
  relay: NativeRelay | null;
  tokens: Tokens;
  limits: SessionLimits;
  maxConnections: number;
  log: Logger;
}

/**
 * The gateway's listener, authenticating exactly as a daemon does: only WebSocket upgrades
 * with a known bearer token (compared in constant time), never from a browser Origin. Plain
 * GETs of /healthz and /readyz answer probes (ready while at least one daemon is up).
 */
export function createGatewayServer(opts: ServerOptions): { server: Server; sessions: Set<Session> } {
  const { fleet, tokens, limits, log } = opts;
  const budget = new ByteBudget(MARKS.gateway.high, MARKS.gateway.low);
  const sessions = new Set<Session>();
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/healthz") return res.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
    if (req.method === "GET" && req.url === "/readyz") {
      // Ready once it has heard from every daemon it found (so it knows their id prefixes) and one is up.
      const ready = fleet.settled() && fleet.up().length > 0;
      return res.writeHead(ready ? 200 : 503, { "Content-Type": "text/plain" }).end(ready ? "ready\n" : fleet.settled() ? "no sbx daemon is up\n" : "still connecting to the sbx daemons\n");
    }
    res.writeHead(426, { "Content-Type": "text/plain", Upgrade: "websocket" }).end("sbx gateway: connect with a WebSocket client and a bearer token\n");
  });
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on("error", () => {});
    if (req.headers.origin !== undefined) return refuse(socket, 403, "Forbidden: browser origins may not connect");
    const token = bearerOf(req.headers.authorization);
    if (!token || !tokens.accepts(token)) return refuse(socket, 401, "Unauthorized");
    if (sessions.size + (opts.relay?.size ?? 0) >= opts.maxConnections) return refuse(socket, 503, "Service Unavailable: too many connections");
    // As a daemon does: the query may bind the connection to one sandbox (the value, user text, stays out of the status line).
    const binding = parseBind(req.url ?? "/");
    if ("problem" in binding) return refuse(socket, 400, "Bad Request", "", binding.problem);
    const client = acceptUpgrade(req, socket, head, MAX_MESSAGE);
    if (!client) return;
    const session = new Session(client, token, fleet, limits, log, budget, () => sessions.delete(session), binding, opts.relay);
    sessions.add(session);
  });
  return { server, sessions };
}

