/**
 * A TCP connection to a port on a sandbox's own loopback, opened by the supervisor (net.connect)
 * and carried on the channel: the daemon reaches servers inside while the sandbox keeps no
 * inbound network of its own. Its bytes count as the sandbox's traffic (egress: what it sends).
 */
import { SandboxDuplex } from "../streams/sandbox-duplex.js";
import type { Sandbox } from "../sandbox/sandbox.js";

/** A SandboxDuplex that passes for a socket where Node's http Agent expects one. */
export class Tunnel extends SandboxDuplex {
  setKeepAlive(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

export function openTunnel(sb: Sandbox, port: number): Tunnel {
  const journal = sb.egress.journal;
  const tunnel = new Tunnel(sb.link, { toSandbox: (n) => (journal.bytesIn += n), fromSandbox: (n) => (journal.bytesOut += n) });
  tunnel.openWith(() => sb.link.call("net.connect", { port, input: tunnel.input, output: tunnel.output }));
  return tunnel;
}
