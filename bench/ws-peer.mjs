// The far end of the raw `ws` loopback floor, run as its own process (like the daemon).
// Prints "port N" on stdout, then per connection obeys text commands:
//   {"op":"send","bytes":N,"frame":F}  sends N bytes in F-byte binary frames, then the text "done"
//   {"op":"recv","bytes":N}            counts N binary bytes, then answers the text "done"
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(fileURLToPath(new URL("../packages/client/package.json", import.meta.url)));
const { WebSocketServer } = require("ws");

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false, maxPayload: 64 << 20 });
wss.on("listening", () => process.stdout.write(`port ${wss.address().port}\n`));
wss.on("connection", (ws) => {
  let expect = 0;
  let got = 0;
  ws.on("message", (data, isBinary) => {
    if (isBinary) {
      got += data.length;
      if (expect && got >= expect) {
        ws.send("done");
        expect = 0;
      }
      return;
    }
    const cmd = JSON.parse(data.toString());
    if (cmd.op === "recv") {
      expect = cmd.bytes;
      got = 0;
      ws.send("ready");
    } else if (cmd.op === "send") sendAll(ws, cmd.bytes, cmd.frame);
  });
});

/** Sends with backpressure: at most 16 MiB handed to the socket and not yet written. */
function sendAll(ws, total, frame) {
  const buf = Buffer.alloc(frame, 0);
  let sent = 0;
  let inflight = 0;
  const limit = Math.max(1, Math.floor((16 << 20) / frame));
  const pump = () => {
    while (inflight < limit && sent < total) {
      const n = Math.min(frame, total - sent);
      sent += n;
      inflight++;
      ws.send(n === frame ? buf : buf.subarray(0, n), { binary: true }, () => {
        inflight--;
        if (sent < total) pump();
        else if (inflight === 0) ws.send("done");
      });
    }
  };
  pump();
}
