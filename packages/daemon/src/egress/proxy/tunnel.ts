import type { Socket } from "node:net";
import type { Dialer } from "./dial.js";
import type { Duplex } from "node:stream";
import { hostPort } from "../policy/host.js";
import { refusal } from "./http.js";
import type { EgressJournal } from "./journal.js";
import type { EgressDecision } from "../policy/policy.js";
import { SecretBlocked, type SecretSet } from "../secrets/secrets.js";
import { clientHelloServerName, plaintextKind, type HelloName } from "./sniff.js";
import { sniAgrees, type Target } from "../policy/target.js";

export type Allowed = Extract<EgressDecision, { allowed: true }>;

/** An open connection the proxy may have to cut when allowNet changes. */
export interface OpenConnection {
  target: Target;
  dialled: { address: string; port: number; via: "literal" | "pin" | "dns" };
  sockets: Array<Socket | Duplex>;
}

/** What a tunnel needs from the proxy that owns it. */
export interface TunnelHost {
  readonly journal: EgressJournal;
  readonly dialer: Dialer;
  readonly secrets: SecretSet;
  /** Keeps `conn` among the open connections until the returned function is called. */
  track(conn: OpenConnection): () => void;
  /** Counts the bytes both ways. */
  count(client: Duplex, upstream: Socket): void;
  /** Records a ClientHello that names another host (or cannot be read) and closes the tunnel. */
  refuseHello(target: Target, hello: HelloName, close: () => void): void;
  /** Takes over a tunnel that turned out to carry plaintext HTTP: its requests are read like plain proxy requests. */
  readAsHttp(target: Target, decision: Allowed, client: Duplex): void;
}

export interface TunnelOptions {
  /** The 200 was already sent (the proxy answered to read the first bytes itself). */
  answered: boolean;
  /** The sandbox holds secrets: plaintext is read, never passed on unread. */
  readPlaintext: boolean;
}

/**
 * A CONNECT tunnel the proxy does not terminate, step by step:
 *
 *   dial → connected → sniff the client's first bytes → one of
 *     pass      TLS whose server name agrees with the target (or, without secrets, anything)
 *     guard     plaintext that is not HTTP, through a guard that ends the tunnel before a
 *               placeholder of the sandbox's would leave (servers that speak first still work)
 *     handOff   a plaintext HTTP request, given to the proxy to read like a plain request
 *     refuse    a ClientHello that names another host or cannot be read
 *   → closed
 *
 * Unless the 200 went out already, it goes once the upstream is connected, and a 502 names the
 * problem if it cannot be.
 */
export class Tunnel {
  private readonly upstream: Socket;
  private readonly untrack: () => void;
  private first: Buffer;
  private connected = false;
  /** Set once the client belongs to the proxy's HTTP reader: closing the tunnel no longer closes it. */
  private handedOff = false;

  constructor(
    private readonly host: TunnelHost,
    private readonly target: Target,
    private readonly decision: Allowed,
    private readonly client: Duplex,
    head: Buffer,
    private readonly opts: TunnelOptions,
  ) {
    this.first = head;
    const { socket, ready } = host.dialer.dial(decision.address, decision.port, target.host, decision.via === "dns");
    this.upstream = socket;
    this.untrack = host.track({ target, dialled: decision, sockets: [client, this.upstream] });
    this.upstream.on("error", () => {});
    ready.then(
      (rest) => this.onConnected(rest),
      (err: Error) => this.unreachable(err),
    );
    this.upstream.once("close", () => this.close());
    client.once("close", () => {
      if (!this.handedOff) this.close();
    });
  }

  private unreachable(err: Error): void {
    if (this.client.writable && !this.connected && !this.opts.answered) {
      this.client.end(refusal(502, `cannot reach ${hostPort(this.target.host, this.target.port)}: ${err.message}`));
    }
    this.close();
  }

  private onConnected(rest: Buffer): void {
    this.connected = true;
    // Bytes the upstream sent right behind an upstream proxy's answer belong to the stream.
    if (rest.length) this.upstream.unshift(rest);
    this.upstream.resume();
    if (!this.opts.answered) this.client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    // While the client's first bytes are awaited, the server may speak first (SMTP, FTP and the like).
    if (this.opts.readPlaintext) this.upstream.pipe(this.client);
    if (this.first.length && this.sniff()) return;
    const gate = (chunk: Buffer) => {
      this.first = Buffer.concat([this.first, chunk]);
      if (this.sniff()) this.client.off("data", gate);
    };
    this.client.on("data", gate);
    this.client.resume(); // the proxy may have paused it to read the first bytes
  }

  /** Decides on the first bytes; false while more are needed. */
  private sniff(): boolean {
    const hello = clientHelloServerName(this.first);
    if (hello === "more") return false;
    if (hello === "bad" || (hello !== "not-tls" && !sniAgrees(hello ?? undefined, this.target))) {
      this.host.refuseHello(this.target, hello, () => this.close());
      return true;
    }
    if (hello !== "not-tls" || !this.opts.readPlaintext) {
      this.pass();
      return true;
    }
    const kind = plaintextKind(this.first);
    if (kind === "more") return false;
    if (kind === "other") this.guard();
    else this.handOff();
    return true;
  }

  private pass(): void {
    this.send(this.first);
    this.host.count(this.client, this.upstream);
    this.client.pipe(this.upstream);
    if (!this.opts.readPlaintext) this.upstream.pipe(this.client);
  }

  private guard(): void {
    const { target } = this;
    const guard = this.host.secrets.bodyInspector({ host: target.host, port: target.port, scheme: "http" });
    guard.on("error", (err) => {
      if (err instanceof SecretBlocked) this.host.journal.record({ host: target.host, port: target.port, method: "CONNECT", allowed: false, reason: err.message, secret: err.secret });
      this.close();
    });
    this.host.count(this.client, this.upstream);
    guard.pipe(this.upstream);
    this.host.journal.bytesOut += this.first.length;
    guard.write(this.first);
    this.client.pipe(guard);
  }

  /** Plaintext HTTP: read like a plain proxy request, on the proxy's own upstream connections. */
  private handOff(): void {
    this.handedOff = true;
    this.upstream.unpipe(this.client);
    this.close();
    this.client.pause();
    this.client.unshift(this.first);
    this.host.readAsHttp(this.target, this.decision, this.client);
  }

  private send(bytes: Buffer): void {
    if (!bytes.length) return;
    this.host.journal.bytesOut += bytes.length;
    this.upstream.write(bytes);
  }

  close(): void {
    this.untrack();
    this.upstream.destroy();
    if (!this.handedOff) this.client.destroy();
  }
}
