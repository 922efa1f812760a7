// The raw `ws` loopback floor: a ws server in a process of its own (ws-peer.mjs) and a client here.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { BENCH, WebSocket, now } from "./env.mjs";

/** Starts ws-peer.mjs and connects to it; download/upload return MB/s. */
export async function startWsPeer() {
  const proc = spawn(process.execPath, [join(BENCH, "ws-peer.mjs")], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once("exit", (c) => reject(new Error(`ws peer exited ${c}`)));
  });
  // Two connections: ws's default random masking key per frame, and the key 0 (what the SDK
  // uses on loopback, where ws then leaves the bytes alone; client endpoint.ts maskingFor).
  const open = async (generateMask) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, maxPayload: 64 << 20, ...(generateMask ? { generateMask } : {}) });
    ws.binaryType = "nodebuffer";
    await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
    const conn = { ws, onText: null, onBinary: null };
    ws.on("message", (data, isBinary) => (isBinary ? conn.onBinary?.(data) : conn.onText?.(data.toString())));
    conn.nextText = () => new Promise((r) => (conn.onText = (t) => ((conn.onText = null), r(t))));
    return conn;
  };
  const masked = await open(null);
  const zeroKey = await open((mask) => mask.fill(0));
  const { ws, nextText } = masked;
  return {
    /** The peer process's pid (for CPU accounting). */
    pid: proc.pid,
    /** Server→client (unmasked frames): MB/s. */
    async download(bytes, frame) {
      let got = 0;
      masked.onBinary = (d) => (got += d.length);
      const t0 = now();
      const done = nextText();
      ws.send(JSON.stringify({ op: "send", bytes, frame }));
      await done;
      const t = now() - t0;
      if (got !== bytes) throw new Error(`ws floor got ${got} of ${bytes}`);
      return bytes / 1e6 / (t / 1000);
    },
    /**
     * Client→server (masked frames: a random key each, or with `{ zeroKey: true }` the key 0),
     * with at most 16 MiB handed to ws and not yet written: MB/s.
     */
    async upload(bytes, frame, { zeroKey: zero = false } = {}) {
      const { ws, nextText } = zero ? zeroKey : masked;
      const ready = nextText();
      ws.send(JSON.stringify({ op: "recv", bytes }));
      await ready;
      const buf = Buffer.alloc(frame, 97);
      const t0 = now();
      const done = nextText();
      await new Promise((resolve) => {
        let sent = 0;
        let inflight = 0;
        const limit = Math.max(1, Math.floor((16 << 20) / frame));
        const pump = () => {
          while (inflight < limit && sent < bytes) {
            const n = Math.min(frame, bytes - sent);
            sent += n;
            inflight++;
            ws.send(n === frame ? buf : buf.subarray(0, n), { binary: true }, () => {
              inflight--;
              if (sent < bytes) pump();
              else if (inflight === 0) resolve();
            });
          }
        };
        pump();
      });
      await done;
      return bytes / 1e6 / ((now() - t0) / 1000);
    },
    async stop() {
      ws.terminate();
      zeroKey.ws.terminate();
      proc.kill();
    },
  };
}
