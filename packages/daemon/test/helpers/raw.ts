import WebSocket from "ws";
import { decodeFrame, encodeFrame, FrameOp, type Frame } from "@sbx/protocol";

/** A bare WebSocket client speaking the wire protocol directly, for attacks the SDK would never send. */
export class RawClient {
  private nextId = 1;
  private readonly waiters = new Map<number | string, (msg: any) => void>();
  readonly notifications: any[] = [];
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer, isBinary) => {
      if (isBinary) {
        const f = decodeFrame(data);
        if (typeof f !== "string") this.frames.push({ ...f, payload: f.payload.slice() });
        return;
      }
      const msg = JSON.parse(data.toString());
      if (msg.id !== undefined && this.waiters.has(msg.id)) {
        this.waiters.get(msg.id)!(msg);
        this.waiters.delete(msg.id);
      } else if (msg.id === null) this.waiters.get("null")?.(msg);
      else this.notifications.push(msg);
    });
    ws.on("close", (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }

  static open(url: string, token: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });
      ws.once("open", () => resolve(new RawClient(ws)));
      ws.once("error", reject);
    });
  }

  /** Sends a request and resolves with the whole response message. */
  call(method: string, params?: unknown): Promise<any> {
    const id = this.nextId++;
    return this.send({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) }, id);
  }

  send(msg: unknown, id: number | string = "null"): Promise<any> {
    return this.sendText(JSON.stringify(msg), id);
  }

  sendText(text: string, id: number | string = "null"): Promise<any> {
    return new Promise((resolve) => {
      this.waiters.set(id, resolve);
      this.ws.send(text);
    });
  }

  data(stream: number, bytes: Uint8Array): void {
    this.ws.send(encodeFrame(FrameOp.Data, stream, bytes));
  }

  /** One binary message sent as these fragments, in order. */
  fragments(parts: Uint8Array[]): void {
    parts.forEach((p, i) => this.ws.send(p, { binary: true, fin: i === parts.length - 1 }));
  }

  end(stream: number): void {
    this.ws.send(encodeFrame(FrameOp.End, stream));
  }

  close(): void {
    this.ws.close();
  }
}

/**
 * Attempts a WebSocket upgrade to `url` with `headers`: the HTTP status it was refused with and
 * the body, or 101 (and an empty body) if it opened (the connection is then closed).
 */
export function tryUpgrade(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once("open", () => {
      ws.close();
      resolve({ status: 101, body: "" });
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d));
      res.on("end", () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    ws.once("error", (err) => reject(err));
  });
}
