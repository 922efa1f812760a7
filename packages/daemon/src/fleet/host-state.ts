/**
 * The little a daemon adds so that many of them can serve one fleet: an id prefix naming this
 * host in every sandbox id (a gateway routes by it without shared state), a cap on live
 * sandboxes, a drain mode that refuses new sandboxes while running ones finish, and the
 * capacity figures a gateway places new sandboxes by. Kubernetes does the rest.
 */
import { createHash } from "node:crypto";
import { statfsSync } from "node:fs";
import { availableParallelism, freemem, totalmem } from "node:os";
import type { ResultOf } from "@sbx/protocol";
import type { DaemonMetrics } from "../metrics/metrics.js";
import type { SandboxLimits } from "../sandbox/sandbox.js";
import { DaemonError } from "../util/errors.js";
import type { Logger } from "../util/log.js";

/** What daemon.info tells a gateway this daemon does (see the protocol's DaemonInfo.features). */
export const DAEMON_FEATURES = ["bind"] as const;

export type DaemonInfo = ResultOf<"daemon.info">;

/** What the host state reads from the sandbox manager: the caps of the sandboxes handed out. */
export interface OwnedSandboxes {
  owned(): SandboxLimits[];
}

export interface HostStateOptions {
  idPrefix: string | null;
  maxSandboxes: number;
  /** The owner key (token digest) of the daemon's primary token: the only one daemon.* methods answer. */
  operator: string;
  stateDir: string;
  mode: "root" | "rootless";
  version: string;
  /** Refused creates count in sbx_sandbox_create_errors_total like the manager's own refusals. */
  metrics: DaemonMetrics;
  log: Logger;
}

const LOWER_BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/**
 * The id prefix for a configured name: a short lower-case alphanumeric name is used as it is;
 * anything else (a Kubernetes node name such as `ip-10-0-1-23.ec2.internal`) becomes ten
 * base32 characters of its SHA-256, which keeps ids short and url-safe.
 *
 * @example idPrefixOf("n1") // "n1"
 * @example idPrefixOf("ip-10-0-1-23.ec2.internal") // ten characters of [a-z2-7]
 */
export function idPrefixOf(name: string): string {
  if (/^[a-z0-9]{1,16}$/.test(name)) return name;
  if (!/^[A-Za-z0-9._-]{1,253}$/.test(name)) throw new Error(`idPrefix '${name.slice(0, 80)}': must be a host name (letters, digits, '.', '-', '_'; at most 253)`);
  const digest = createHash("sha256").update(name).digest();
  let out = "";
  for (let i = 0; i < 10; i++) out += LOWER_BASE32[digest[i]! & 31];
  return out;
}

/** Drain mode, the sandbox cap and the capacity report of one daemon. */
export class HostState {
  private draining = false;
  /** Creates admitted and not finished yet: counted against maxSandboxes, so concurrent creates cannot overshoot it. */
  private admitting = 0;
  private statfsFailed = false;

  constructor(private readonly opts: HostStateOptions, private readonly sandboxes: OwnedSandboxes) {}

  /** Runs a create if this daemon takes new sandboxes now; otherwise refuses, saying why. */
  async admit<T>(create: () => Promise<T>): Promise<T> {
    if (this.draining) {
      throw this.refuse("Unavailable", "this daemon is draining (sbx daemon drain): it starts no new sandboxes while its running ones finish; create the sandbox on another host");
    }
    const live = this.sandboxes.owned().length;
    if (live + this.admitting >= this.opts.maxSandboxes) {
      throw this.refuse("ResourceLimit", `this daemon already runs ${live} sandboxes (${this.admitting} more starting), the most it allows (maxSandboxes ${this.opts.maxSandboxes})`);
    }
    this.admitting++;
    try {
      return await create();
    } finally {
      this.admitting--;
    }
  }

  private refuse(code: "Unavailable" | "ResourceLimit", message: string): DaemonError {
    this.opts.metrics.createErrors.inc({ code });
    return new DaemonError(code, message);
  }

  /** daemon.info: for the operator token only (host-wide figures say what other tenants run). */
  info(owner: string): DaemonInfo {
    this.checkOperator(owner, "daemon.info");
    return this.describe();
  }

  /** daemon.drain: turns drain mode on or off; operator token only. */
  drain(owner: string, draining: boolean): DaemonInfo {
    this.checkOperator(owner, "daemon.drain");
    if (draining !== this.draining) {
      this.draining = draining;
      const live = this.sandboxes.owned().length;
      this.opts.log.info(draining ? `draining: new sandboxes are refused; ${live} running ones go on until they end` : `drain ended: new sandboxes are accepted again (${live} running)`);
    }
    return this.describe();
  }

  private checkOperator(owner: string, method: string): void {
    if (owner !== this.opts.operator) {
      throw new DaemonError("Forbidden", `${method} answers only the daemon's operator token (its primary token: SBX_TOKEN or the token file), not a tenant's`);
    }
  }

  private describe(): DaemonInfo {
    const owned = this.sandboxes.owned();
    let disk = { totalBytes: 0, freeBytes: 0 };
    try {
      const s = statfsSync(this.opts.stateDir);
      disk = { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
    } catch (err) {
      // Asked for on every placement: said once, not every time.
      if (!this.statfsFailed) this.opts.log.warn(`cannot read the free space of ${this.opts.stateDir} (daemon.info reports 0): ${(err as Error).message}`);
      this.statfsFailed = true;
    }
    const sum = (pick: (l: SandboxLimits) => number) => owned.reduce((n, l) => n + pick(l), 0);
    return {
      version: this.opts.version,
      features: [...DAEMON_FEATURES],
      mode: this.opts.mode,
      idPrefix: this.opts.idPrefix,
      draining: this.draining,
      capacity: {
        sandboxes: { live: owned.length, max: this.opts.maxSandboxes },
        // On Linux, Node's freemem() is the kernel's MemAvailable.
        memory: { totalBytes: totalmem(), availableBytes: freemem(), committedBytes: sum((l) => l.memoryBytes) },
        disk: { ...disk, committedBytes: sum((l) => l.diskBytes) },
        cpus: { count: availableParallelism(), committed: Math.round(sum((l) => l.cpus) * 100) / 100 },
      },
    };
  }
}
