import type { ChildProcess } from "node:child_process";
import type { NotificationName, NotificationParams } from "@sbx/protocol";
import type { SupervisorLink } from "./supervisor-link.js";
import type { SandboxResources } from "./resources.js";
import type { UsageMeter } from "./usage.js";
import type { EgressJournal } from "../egress/proxy/journal.js";
import type { EgressProxy } from "../egress/proxy/proxy.js";

/** What the sandbox manager needs of a client connection. */
export interface Client {
  readonly id: number;
  readonly owner: string;
  readonly closed: boolean;
  notify<N extends NotificationName>(method: N, params: NotificationParams<N>): void;
}

export interface SandboxLimits {
  memoryBytes: number;
  cpus: number;
  diskBytes: number;
}

/** One live sandbox as the daemon tracks it. */
export class Sandbox {
  readonly createdAt = new Date();
  /** When its owner got it (later than createdAt for a sandbox from the warm pool). */
  handedOutAt = new Date();
  expiresAt: Date | null = null;
  /** The connection a "session" sandbox lives with; null once it has a duration timeout. */
  session: Client | null = null;
  graceTimer: NodeJS.Timeout | null = null;
  expiryTimer: NodeJS.Timeout | null = null;
  readonly attached = new Set<Client>();
  /** Clients that asked for sandbox.network notifications. */
  readonly networkWatchers = new Set<Client>();
  /** Running processes and the client that spawned each (it gets the exit notification). */
  readonly processes = new Map<number, Client>();
  readonly earlyExits = new Map<number, NotificationParams<"process.exit">["status"]>();
  stopped = false;
  /** OOM kills already attributed to a process. */
  oomKillsSeen = 0;
  /** The allowNet entries its secrets' hosts add; kept whatever setAllowNet is given later. */
  secretHosts: readonly string[] = [];
  /** Variables every spawn starts from beyond the daemon's base (the CA for Node where it holds secrets). */
  baseEnv: Readonly<Record<string, string>> = {};
  /** Pids the API sent SIGKILL to that have not exited yet: their SIGKILL is not an OOM kill. */
  readonly sigkilled = new Set<number>();

  constructor(
    readonly id: string,
    /** The token's owner key; "" while the sandbox waits unowned in the warm pool. */
    public owner: string,
    public labels: Record<string, string>,
    readonly env: Map<string, string>,
    readonly limits: SandboxLimits,
    /** Host uid, storage mount and cgroup set aside for it (root mode). */
    readonly resources: SandboxResources,
    readonly proc: ChildProcess,
    readonly link: SupervisorLink,
    readonly meter: UsageMeter,
    /** Its egress proxy, the counters and log, and the directory of the socket bound into it. */
    readonly egress: { proxy: EgressProxy; journal: EgressJournal; socketDir: string },
  ) {}

  info() {
    return {
      id: this.id,
      labels: { ...this.labels },
      createdAt: this.createdAt.toISOString(),
      expiresAt: this.expiresAt ? this.expiresAt.toISOString() : null,
      status: this.stopped ? ("stopped" as const) : ("running" as const),
    };
  }

  clearTimers(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.graceTimer = this.expiryTimer = null;
  }
}
