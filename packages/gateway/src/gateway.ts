import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { parseListen, type GatewayConfig } from "./config.js";
import type { Discovery } from "./discovery/discovery.js";
import { KubernetesDiscovery } from "./discovery/kubernetes.js";
import { StaticDiscovery } from "./discovery/static.js";
import { Fleet } from "./fleet/fleet.js";
import { createLogger, type Logger } from "./log.js";
import { NativeRelay } from "./net/native-relay.js";
import { createGatewayServer } from "./server/server.js";
import { Tokens } from "./server/tokens.js";
import type { Session } from "./session/session.js";

/** The discovery a config names. */
export function discoveryOf(config: GatewayConfig, log: Logger): Discovery {
  const d = config.discovery;
  if (d.kind === "static") return new StaticDiscovery(d.urls);
  return new KubernetesDiscovery({ ...d, log });
}

/**
 * One gateway replica: a listener that speaks the daemon's protocol to clients and a view of
 * the fleet. It keeps no state another replica would need, so any number run side by side.
 *
 * @example
 * await using gw = await Gateway.start(resolveConfig({ tokensFile, daemons: ["ws://10.0.0.5:7070"] }));
 * // clients use gw.url exactly as they would a daemon's
 */
export class Gateway implements AsyncDisposable {
  private constructor(
    readonly url: string,
    private readonly server: Server,
    private readonly sessions: Set<Session>,
    readonly fleet: Fleet,
    private readonly log: Logger,
    private readonly relay: NativeRelay | null,
  ) {}

  static async start(config: GatewayConfig, opts: { log?: Logger; discovery?: Discovery } = {}): Promise<Gateway> {
    const log = opts.log ?? createLogger();
    const { host, port } = parseListen(config.listen);
    const fleet = new Fleet(opts.discovery ?? discoveryOf(config, log), {
      operatorToken: config.daemonToken,
      placementCandidates: config.placementCandidates,
      heartbeatMs: config.heartbeatMs,
      log,
    });
    const relay = config.nativeRelay ? NativeRelay.start(log) : null;
    if (relay) fleet.onHostLost((host, reason) => relay.lose(host, reason));
    const { server, sessions } = createGatewayServer({
      fleet,
      relay,
      tokens: new Tokens(config.tokens),
      limits: { maxInFlight: 256, maxStreams: 1024, maxJsonDepth: 64 },
      maxConnections: config.maxConnections,
      log,
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    fleet.start();
    const addr = server.address() as AddressInfo;
    const url = `ws://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
    log.info(`listening on ${url} (${fleet.describe()})`);
    return new Gateway(url, server, sessions, fleet, log, relay);
  }

  /** Stops listening and closes every client connection (their session sandboxes then end on their daemons, after the grace period). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sessions) s.client.close(1001, "gateway shutting down");
    this.server.closeAllConnections();
    await this.relay?.drain(2000);
    this.relay?.close();
    this.fleet.close();
    await closed;
    this.log.info("stopped");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
