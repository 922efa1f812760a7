import type { ChildProcess } from "node:child_process";
import type { NotificationName, NotificationParams } from "@sbx/protocol";
import type { SupervisorLink } from "./supervisor-link.js";
import type { SandboxResources } from "./resources.js";
import type { UsageMeter } from "./usage.js";
import type { EgressEvent, EgressJournal } from "../egress/proxy/journal.js";
import type { EgressProxy } from "../egress/proxy/proxy.js";
import { Emitter, type Registration } from "../util/emitter.js";
import type { SandboxLimits } from "./limits.js";
import { FileHandles } from "./file-handles.js";
import { Lifetime } from "./lifetime.js";
import { ProcessTable } from "./processes.js";
import { ProcessOutputs } from "./outputs.js";
import { ReplTable } from "../runtimes/repl.js";
import { Exposures } from "../runtimes/expose.js";

export type { SandboxLimits } from "./limits.js";

/** What the sandbox manager needs of a client connection. */
export interface Client {
  readonly id: number;
  readonly owner: string;
  readonly closed: boolean;
  notify<N extends NotificationName>(method: N, params: NotificationParams<N>): void;
}

/** Why a sandbox ended, as `sandbox.exit` reports it. */
export type EndReason = NotificationParams<"sandbox.exit">["reason"];

/** The parts the host set up for one sandbox, handed to it whole. */
export interface SandboxParts {
  limits: SandboxLimits;
  /** Host uid, storage mount and cgroup set aside for it (root mode). */
  resources: SandboxResources;
  proc: ChildProcess;
  link: SupervisorLink;
  meter: UsageMeter;
  /** Its egress proxy, the counters and log, and the directory of the socket bound into it. */
  egress: { proxy: EgressProxy; journal: EgressJournal; socketDir: string };
  /** Booted from an image (`root`): its user namespace maps a whole block, and processes may run as its uid 0. */
  sudo: boolean;
}

/** What `create` gives a sandbox when it hands it to its owner. */
export interface Ownership {
  owner: string;
  labels: Record<string, string>;
  /** Variables every spawn starts from beyond the daemon's base (the CA for Node where it holds secrets). */
  baseEnv: Readonly<Record<string, string>>;
  /** The allowNet entries its secrets' hosts add; kept whatever setAllowNet is given later. */
  secretHosts: readonly string[];
  /** The default environment of its processes: the secrets' placeholders, then create's env. */
  env: Record<string, string>;
}

/**
 * One live sandbox as the daemon tracks it. Its state changes through its methods only: it is
 * owned once, stops once, and its connections, watchers and processes are kept here.
 */
export class Sandbox {
  /** Its default environment, as env.set and env.delete leave it. */
  readonly env = new Map<string, string>();
  /** Variables of the base environment (the daemon's or create's) that env.delete removed. */
  readonly envRemoved = new Set<string>();
  readonly processes: ProcessTable;
  /** What its clients may attach to again: processes' commands, statuses and kept output. */
  readonly outputs = new ProcessOutputs();
  /** Its REPLs (runtimes/repl.ts), by pid. */
  readonly repls = new ReplTable();
  /** Its exposed ports (runtimes/expose.ts), closed when it stops. */
  readonly exposures = new Exposures();
  /** Files opened with fs.open, by the connection holding each. */
  readonly files = new FileHandles();
  readonly lifetime: Lifetime;
  #limits: SandboxLimits;
  readonly resources: SandboxResources;
  readonly proc: ChildProcess;
  readonly link: SupervisorLink;
  readonly meter: UsageMeter;
  readonly egress: SandboxParts["egress"];
  readonly sudo: boolean;

  #owner = "";
  #labels: Record<string, string> = {};
  #handedOutAt = new Date();
  #baseEnv: Readonly<Record<string, string>> = {};
  #secretHosts: readonly string[] = [];
  #stopped = false;
  /** Connections that created or connected to it: they hear `sandbox.exit`. */
  readonly #attached = new Set<Client>();
  readonly #network = new Emitter<EgressEvent>();
  /** Clients that asked for `sandbox.network`, and their registrations. */
  readonly #watchers = new Map<Client, Registration>();

  constructor(
    readonly id: string,
    parts: SandboxParts,
    /** How long a session sandbox outlives its connection. */
    sessionGraceMs: number,
    /** Called when its lifetime runs out. */
    end: (reason: "timeout" | "session") => void,
  ) {
    this.#limits = parts.limits;
    ({ resources: this.resources, proc: this.proc, link: this.link, meter: this.meter, egress: this.egress, sudo: this.sudo } = parts);
    this.processes = new ProcessTable(id, () => this.meter.oomKills(), (pid, status) => this.outputs.exited(pid, status));
    this.lifetime = new Lifetime(sessionGraceMs, end);
  }

  /** The limits the host holds it to now. */
  get limits(): SandboxLimits {
    return this.#limits;
  }

  /**
   * Holds a pooled sandbox, before it is handed out, to other memory and CPU caps (its disk and
   * the number of CPUs it sees stay: the pool keeps sandboxes apart by those).
   */
  async retune(limits: SandboxLimits): Promise<void> {
    if (this.#owner) throw new Error(`sandbox ${this.id} is already handed out`);
    if (limits.diskBytes !== this.#limits.diskBytes) throw new Error(`sandbox ${this.id} has a ${this.#limits.diskBytes}-byte disk, not ${limits.diskBytes}`);
    await this.resources.retune(limits);
    this.#limits = { ...limits };
  }

  /** The token's owner key; "" while the sandbox waits unowned in the warm pool. */
  get owner(): string {
    return this.#owner;
  }

  get labels(): Readonly<Record<string, string>> {
    return this.#labels;
  }

  /** When its owner got it (for a sandbox from the warm pool, later than its launch): its createdAt. */
  get handedOutAt(): Date {
    return this.#handedOutAt;
  }

  get baseEnv(): Readonly<Record<string, string>> {
    return this.#baseEnv;
  }

  get secretHosts(): readonly string[] {
    return this.#secretHosts;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Gives the sandbox to its owner; a sandbox is handed out once. */
  handOut(o: Ownership): void {
    if (this.#owner) throw new Error(`sandbox ${this.id} already belongs to an owner`);
    this.#owner = o.owner;
    this.#labels = { ...o.labels };
    this.#baseEnv = o.baseEnv;
    this.#secretHosts = o.secretHosts;
    for (const [k, v] of Object.entries(o.env)) this.env.set(k, v);
    this.#handedOutAt = new Date();
    this.egress.proxy.setOwner(o.owner);
    this.meter.rebase();
  }

  /** `client` hears of the sandbox's end. */
  attach(client: Client): void {
    this.#attached.add(client);
    this.lifetime.joined(client);
  }

  /** `client`'s connection closed: it hears nothing more, its open files close, and a session it held starts its grace period. */
  detach(client: Client): void {
    this.#attached.delete(client);
    this.watchNetwork(client, false);
    for (const handle of this.files.release(client)) this.link.call("fs.fileClose", { handle }).catch(() => {});
    if (!this.#stopped) this.lifetime.left(client);
  }

  /** Turns `sandbox.network` notifications to `client` on or off. */
  watchNetwork(client: Client, enabled: boolean): void {
    const current = this.#watchers.get(client);
    if (enabled && !current) this.#watchers.set(client, this.onNetwork((event) => client.closed || client.notify("sandbox.network", { id: this.id, event })));
    if (!enabled && current) {
      current[Symbol.dispose]();
      this.#watchers.delete(client);
    }
  }

  /** Listens to every egress event of the sandbox (allowed and refused connections and requests). */
  onNetwork(listener: (event: EgressEvent) => void): Registration {
    return this.#network.on(listener);
  }

  /** The egress journal recorded an event. */
  networkEvent(event: EgressEvent): void {
    this.#network.fire(event);
  }

  /**
   * Marks the sandbox stopped and tells every attached connection why; false if it already was.
   * Timers stop and listeners go; killing the processes is the caller's part.
   */
  stop(reason: EndReason, message?: string): boolean {
    if (this.#stopped) return false;
    this.#stopped = true;
    this.lifetime.stop();
    this.exposures.closeAll();
    for (const client of this.#attached) client.notify("sandbox.exit", { id: this.id, reason, ...(message ? { message: message.slice(0, 4000) } : {}) });
    this.#attached.clear();
    this.#watchers.clear();
    this.#network.clear();
    return true;
  }

  info() {
    const expiresAt = this.lifetime.expiresAt;
    return {
      id: this.id,
      labels: { ...this.#labels },
      // The user's create, not the pool's launch (which may be minutes earlier).
      createdAt: this.#handedOutAt.toISOString(),
      expiresAt: expiresAt ? expiresAt.toISOString() : null,
      status: this.#stopped ? ("stopped" as const) : ("running" as const),
    };
  }
}
