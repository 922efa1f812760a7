import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { ClientSocket } from "../net/client-socket.js";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const KEY = /^[+/0-9A-Za-z]{22}==$/;

/** An HTTP error answer on a socket that asked to upgrade, and the socket ended; the body is the reason unless given. */
export function refuse(socket: Socket, status: number, reason: string, headers = "", text = reason): void {
  const body = `${text}\n`;
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n${headers}Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

/**
 * The server's half of the opening handshake (RFC 6455 §4.2), for a request already
 * authenticated: a GET asking to upgrade to websocket, version 13, with a well-formed key. No
 * extension is agreed (permessage-deflate included: a client that offers it gets plain frames)
 * and no subprotocol. Returns the connection, or null after refusing the request.
 */
export function acceptUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, maxMessage: number): ClientSocket | null {
  if (req.method !== "GET") return refuse(socket, 405, "Method Not Allowed"), null;
  if (req.headers.upgrade?.toLowerCase() !== "websocket") return refuse(socket, 400, "Bad Request: Upgrade must be websocket"), null;
  const key = req.headers["sec-websocket-key"];
  if (typeof key !== "string" || !KEY.test(key)) return refuse(socket, 400, "Bad Request: missing or invalid Sec-WebSocket-Key"), null;
  if (req.headers["sec-websocket-version"] !== "13") return refuse(socket, 426, "Upgrade Required: WebSocket version 13", "Sec-WebSocket-Version: 13\r\n"), null;
  const accept = createHash("sha1").update(key + GUID).digest("base64");
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  return new ClientSocket(socket, head, maxMessage);
}
