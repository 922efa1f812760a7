import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Host } from "../fleet/host.js";
import type { Logger } from "../log.js";
import type { Surrendered } from "./surrender.js";

/** Where `pnpm build` puts the relay: beside the bundle that runs (dist/). */
const BINARY = fileURLToPath(new URL("./sbx-gateway-relay", import.meta.url));

/** What the relay says when it ended a connection: the client left, the daemon closed after its close frame, the host was lost (farewell sent), cut (lost mid-frame), bye (the gateway shut down), error. */
export type RelayEnd = "client" | "daemon" | "lost" | "cut" | "bye" | "error";

interface Relayed {
  host: Host;
  sandbox: string;
}

/** A field of a message to the relay: base64, or "-" for no bytes (fields are split on spaces). */
const b64 = (s: string | Buffer) => (s.length === 0 ? "-" : (typeof s === "string" ? Buffer.from(s, "utf8") : s).toString("base64"));

/**
 * The gateway's data plane for bound connections: a client connection about one sandbox, once
 * routed and quiet, is handed with its daemon connection to `sbx-gateway-relay` (native/relay.c),
 * a child process that moves their bytes without the gateway's event loop, JSON or frame
 * machinery: the hop then costs what a bare relay costs. The sockets go over the child's Node
 * IPC channel (SCM_RIGHTS); the relay tells the gateway when each connection ends.
 *
 * If the relay is not built, or dies, bound connections simply stay on the gateway's general
 * path (a dead relay takes the connections it carried with it; their clients see them close).
 */
export class NativeRelay {
  private readonly conns = new Map<number, Relayed>();
  /** This process's copies of sockets being handed over: closed once sent, or when the relay dies first. */
  private readonly handing = new Set<Surrendered>();
  private nextId = 1;
  private dead = false;
  /** Set by close(): the exit that follows is asked for, not reported. */
  private closing = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly log: Logger,
  ) {
    child.on("message", (m) => this.onMessage(m));
    child.on("exit", (code, signal) => {
      this.dead = true;
      // A handover the relay did not live to take: its callback never comes, the connection ends here.
      for (const s of this.handing) s.socket.destroy();
      this.handing.clear();
      if (this.closing) return;
      const n = this.conns.size;
      this.conns.clear();
      log.error(`the native relay exited (${signal ?? `code ${code}`}); its ${n} connections are closed, and bound connections now stay on the gateway's own path`);
    });
    child.on("error", (err) => log.error(`the native relay: ${err.message}`));
    child.channel?.unref();
    child.unref();
  }

  /** Starts the relay, or returns null (saying why) when it is not there to start. */
  static start(log: Logger, binary = BINARY): NativeRelay | null {
    if (!existsSync(binary)) {
      log.warn(`no native relay at ${binary} (built by \`pnpm build\`, which needs a C compiler): bound connections stay on the gateway's own path`);
      return null;
    }
    const child = spawn(binary, [], { stdio: ["ignore", "ignore", "inherit", "ipc"], serialization: "json" });
    return new NativeRelay(child, log);
  }

  /** Connections the relay carries now. */
  get size(): number {
    return this.conns.size;
  }

  get available(): boolean {
    return !this.dead && this.child.connected;
  }

  /**
   * Hands a client connection and its daemon connection to the relay. Both were given up between
   * two messages; `rest` of each is what the gateway read from it and did not handle, passed on
   * first. If the daemon's side ends without its close frame, the client gets a sandbox.exit
   * notification and close code 4001, both saying "host lost" (the SDK turns these into the
   * errors the gateway's own path gives).
   */
  adopt(client: Surrendered, daemon: Surrendered, host: Host, sandbox: string): void {
    const id = this.nextId++;
    this.conns.set(id, { host, sandbox });
    const farewell = this.farewell(sandbox, `the sbx daemon ${host.label} closed the connection`);
    const handOver = (s: Surrendered, message: string) => {
      this.handing.add(s);
      this.child.send(message, (s.socket as unknown as { _handle: object })._handle as never, (err: Error | null) => {
        if (err) {
          this.log.error(`handing a connection to the native relay: ${err.message}`);
          if (this.available) this.child.send(`drop ${id}`); // its other side goes too
        }
        // The descriptor is the relay's now (in flight or received), or the send failed: this process's copy closes.
        this.handing.delete(s);
        s.socket.destroy();
      });
    };
    handOver(client, `client ${id} ${b64(client.rest)}`);
    handOver(daemon, `daemon ${id} ${b64(daemon.rest)} ${farewell}`);
  }

  /** The host is lost: every connection the relay carries to it ends, its client told why. */
  lose(host: Host, reason: string): void {
    if (!this.available) return;
    for (const [id, c] of this.conns) {
      if (c.host === host) this.child.send(`lose ${id} ${this.farewell(c.sandbox, `the sbx daemon ${host.label} went away (${reason})`)}`);
    }
  }

  /**
   * Lets every connection go as the gateway's own path does when it shuts down: each client gets
   * close 1001 "gateway shutting down" between two frames, its daemon connection is closed.
   * Resolves once all have ended, or after `ms`.
   */
  async drain(ms: number): Promise<void> {
    if (!this.available || this.conns.size === 0) return;
    this.child.send("bye");
    const until = Date.now() + ms;
    while (this.conns.size > 0 && this.available && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  }

  /** Ends the relay and every connection it carries. */
  close(): void {
    this.closing = true;
    this.conns.clear();
    this.child.kill("SIGKILL");
  }

  /** The farewell's two fields: the sandbox.exit notification and the close reason, base64. */
  private farewell(sandbox: string, why: string): string {
    const reason = `host lost: ${why}`;
    const exit = JSON.stringify({ jsonrpc: "2.0", method: "sandbox.exit", params: { id: sandbox, reason: "error", message: reason.slice(0, 4000) } });
    return `${b64(exit)} ${b64(reason)}`;
  }

  private onMessage(m: unknown): void {
    const match = typeof m === "string" ? /^closed (\d+) (\w+)$/.exec(m) : null;
    if (!match) return this.log.warn(`the native relay said something unexpected: ${JSON.stringify(m).slice(0, 200)}`);
    const id = Number(match[1]);
    const c = this.conns.get(id);
    if (!c) return;
    this.conns.delete(id);
    const how = match[2] as RelayEnd;
    if (how === "lost" || how === "cut") this.log.warn(`host lost: ${c.host.label}: a relayed connection to sandbox ${c.sandbox} ended without the daemon's close frame (${how === "lost" ? "the client was told" : "mid-frame: the client was cut off"})`);
  }
}
