import { readFile } from "node:fs/promises";
import { join } from "node:path";
import WebSocket from "ws";
import { TOKEN_FILE, type MethodName, type ParamsOf, type ResultOf } from "@sbx/protocol";
import { runningDaemon } from "../lifecycle.js";
import { UsageError } from "./args.js";

/** A JSON-RPC error answered by the daemon, with its code. */
export class OperatorCallError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

/**
 * The operator's side of `sbx daemon drain|ready`: one WebSocket to the daemon of a state dir
 * (or --url) with its primary token, for daemon.* calls. The SDK is for tenants; this is not.
 */
export class OperatorLink {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();

  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data: Buffer, isBinary) => {
      if (isBinary) return;
      let msg: any;
      try {
        msg = JSON.parse(data.toString("utf8"));
      } catch {
        return;
      }
      const p = this.pending.get(msg?.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new OperatorCallError(String(msg.error.message), Number(msg.error.code)));
      else p.resolve(msg.result);
    });
    ws.on("close", () => {
      for (const p of this.pending.values()) p.reject(new Error("the daemon closed the connection"));
      this.pending.clear();
    });
  }

  /** Connects to `url`, or to the daemon running for `stateDir`, with SBX_TOKEN or the state dir's token file. */
  static async open(opts: { url?: string; stateDir: string; timeoutMs: number }): Promise<OperatorLink> {
    const url = opts.url ?? runningDaemon(opts.stateDir)?.info?.url;
    if (!url) throw new UsageError(`no sbx daemon listens for ${opts.stateDir} (pass --url or --state-dir)`);
    const token = process.env.SBX_TOKEN || (await readFile(join(opts.stateDir, TOKEN_FILE), "utf8").catch(() => "")).trim();
    if (!token) throw new UsageError(`no operator token: set SBX_TOKEN or make ${join(opts.stateDir, TOKEN_FILE)} readable`);
    // Listening on every address is reached through loopback.
    const target = url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:");
    const ws = new WebSocket(target, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false, handshakeTimeout: opts.timeoutMs, maxPayload: 1 << 20 });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => reject(new Error(`the daemon at ${url} refused the connection (HTTP ${res.statusCode})`)));
      ws.once("error", (err) => reject(new Error(`cannot reach the daemon at ${url}: ${err.message}`)));
    });
    return new OperatorLink(ws);
  }

  call<M extends MethodName>(method: M, params: ParamsOf<M>, timeoutMs: number): Promise<ResultOf<M>> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the daemon did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = (fn: (v: any) => void) => (v: any) => (clearTimeout(timer), fn(v));
      this.pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }

  close(): void {
    this.ws.close(1000, "done");
  }
}
