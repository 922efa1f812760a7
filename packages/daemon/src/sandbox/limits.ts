import { availableParallelism, totalmem } from "node:os";
import { LIMIT_DEFAULTS, SANDBOX_HOME, type ParamsOf } from "@sbx/protocol";
import { invalid } from "../util/errors.js";
import { parseBytes } from "../util/units.js";

const MIB = 1024 * 1024;

/** The host's memory, read once: os.totalmem() reads /proc/meminfo, 0.1-0.25 ms on every create otherwise. */
let hostMemory: number | undefined;
const hostMemoryBytes = () => (hostMemory ??= totalmem());

type CreateParams = ParamsOf<"sandbox.create">;

/** The limits of one sandbox, as the host enforces them (cgroups, storage size). */
export interface SandboxLimits {
  memoryBytes: number;
  cpus: number;
  diskBytes: number;
}

/** How one limit comes from `create`'s parameters: every place a limit is read, checked, defaulted or compared goes through this. */
interface LimitSpec<P extends keyof CreateParams> {
  /** The `create` parameter that sets it. */
  param: P;
  /** The parameter's value as a number (its default when absent). */
  parse(value: CreateParams[P] | undefined): number;
  /** What is wrong with the number, if anything. */
  problem(n: number): string | null;
  /** What a rootless daemon (no cgroups, home and /tmp on tmpfs) makes of the limit, for the create's warnings. */
  rootless(asked: string): string;
}

/**
 * Every sandbox limit, by field of {@link SandboxLimits}. A new limit is a row here, a field of
 * `CreateParams` and `LIMIT_DEFAULTS` in the protocol, and its enforcement (cgroups or storage).
 */
export const LIMITS: { [K in keyof SandboxLimits]: LimitSpec<"memory" | "cpus" | "disk"> } = {
  memoryBytes: {
    param: "memory",
    parse: (v) => parseBytes((v ?? LIMIT_DEFAULTS.memory) as string | number),
    problem: (n) => (n < 128 * MIB || n > hostMemoryBytes() ? `must be between 128MiB and this host's ${Math.floor(hostMemoryBytes() / MIB)}MiB` : null),
    rootless: (asked) => `memory: not enforced: this daemon runs rootless (without cgroups), so memory ${asked} is not a limit here; run the daemon as root for enforced limits`,
  },
  cpus: {
    param: "cpus",
    parse: (v) => (v ?? LIMIT_DEFAULTS.cpus) as number,
    // The kernel's smallest CFS quota is 1 ms per 100 ms period.
    problem: (n) => (n < 0.01 ? "must be at least 0.01" : n > availableParallelism() ? `must be at most this host's ${availableParallelism()} cores` : null),
    rootless: (asked) => `cpus: not enforced: this daemon runs rootless (without cgroups), so cpus ${asked} is not a limit here; run the daemon as root for enforced limits`,
  },
  diskBytes: {
    param: "disk",
    parse: (v) => parseBytes((v ?? LIMIT_DEFAULTS.disk) as string | number),
    problem: (n) => (n < MIB ? "must be at least 1MiB" : null),
    rootless: (asked) => `disk: approximate: rootless sandboxes keep ${SANDBOX_HOME} and /tmp in memory (tmpfs), each capped at ${asked}`,
  },
};

const FIELDS = Object.keys(LIMITS) as (keyof SandboxLimits)[];

/** The limits `create` asks for, defaults filled in; InvalidParams naming the parameter when one is out of range. */
export function limitsOf(p: CreateParams): SandboxLimits {
  const limits = {} as SandboxLimits;
  for (const field of FIELDS) {
    const spec = LIMITS[field];
    const n = spec.parse(p[spec.param]);
    const problem = spec.problem(n);
    if (problem) throw invalid(spec.param, problem);
    limits[field] = n;
  }
  return limits;
}

export function sameLimits(a: SandboxLimits, b: SandboxLimits): boolean {
  return FIELDS.every((f) => a[f] === b[f]);
}

/** What the caller asked for that a rootless daemon cannot hold the sandbox to. */
export function rootlessWarnings(p: CreateParams): string[] {
  return FIELDS.filter((f) => p[LIMITS[f].param] !== undefined).map((f) => LIMITS[f].rootless(JSON.stringify(p[LIMITS[f].param])));
}
