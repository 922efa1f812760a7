import { existsSync } from "node:fs";
import { connect, createServer } from "node:net";

/** Where programs inside find the proxy (HTTP_PROXY and friends point here). */
export const PROXY_PORT = 3128;
const SOCKET = "/.sbx/run/proxy.sock";

/**
 * The sandbox's network namespace has only loopback. This bridges 127.0.0.1:3128 inside to
 * the daemon's egress proxy on the unix socket bound into the sandbox, byte for byte; every
 * decision is the proxy's. Calls `ready` once listening (or at once without a socket).
 */
export function startEgressBridge(ready: () => void): void {
  if (!existsSync(SOCKET)) return ready();
  // Half-open both ways: a client that shuts down its sending side still reads the answer.
  const server = createServer({ noDelay: true, allowHalfOpen: true }, (inside) => {
    const out = connect({ path: SOCKET, allowHalfOpen: true });
    inside.on("error", () => out.destroy());
    out.on("error", () => inside.destroy());
    inside.pipe(out);
    out.pipe(inside);
  });
  server.on("error", (err) => {
    process.stderr.write(`supervisor: egress bridge: ${err.message}\n`);
    ready();
  });
  server.listen(PROXY_PORT, "127.0.0.1", ready);
}
