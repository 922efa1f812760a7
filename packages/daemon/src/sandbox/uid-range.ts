import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Host uids are global: two daemons handing out the same ones would let one daemon's sandboxes
 * share per-user kernel limits (RLIMIT_NPROC) and file ownership with another's. Each root-mode
 * daemon therefore claims a range of its own, recorded as a file per claim in a host-wide
 * directory (on /run, so a reboot forgets them); a claim whose daemon is gone is stale.
 */
export const CLAIMS_DIR = "/run/sbx/uids";
/** Where automatic ranges start (well above distributions' user and subuid ranges). */
export const AUTO_UID_BASE = 200000;
const AUTO_BLOCKS = 256;
/** Host uids a sandbox booted from an image takes: its user namespace maps 0..65535 to them. */
export const UID_BLOCK = 65536;

export interface UidRange {
  base: number;
  count: number;
  release(): void;
}

interface Claim {
  base: number;
  count: number;
  pid: number;
  stateDir: string;
}

export class UidRangeError extends Error {}

/**
 * Claims `count` host uids from `base`, or (base null) the first free block of `count` from
 * {@link AUTO_UID_BASE}. Refuses a range that overlaps a live daemon's claim.
 */
export function claimUidRange(opts: { base: number | null; count: number; stateDir: string; dir?: string }): UidRange {
  const dir = opts.dir ?? CLAIMS_DIR;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return withLock(dir, () => {
    const live = liveClaims(dir);
    const overlapping = (base: number) => live.find((c) => base < c.base + c.count && c.base < base + opts.count);
    let base = opts.base;
    if (base === null) {
      for (let k = 0; k < AUTO_BLOCKS && base === null; k++) {
        const candidate = AUTO_UID_BASE + k * opts.count;
        if (!overlapping(candidate)) base = candidate;
      }
      if (base === null) throw new UidRangeError(`no free range of ${opts.count} sandbox uids from ${AUTO_UID_BASE} (${live.length} other daemons hold ranges)`);
    } else {
      const other = overlapping(base);
      if (other) {
        throw new UidRangeError(
          `sandbox uids ${base}..${base + opts.count - 1} overlap ${other.base}..${other.base + other.count - 1}, which the sbx daemon pid ${other.pid} (state dir ${other.stateDir}) uses: set another uidBase (or leave it unset to pick a free range)`,
        );
      }
    }
    const file = join(dir, `${base}-${base + opts.count - 1}`);
    writeFileSync(file, JSON.stringify({ pid: process.pid, start: startTime(process.pid), stateDir: opts.stateDir }) + "\n", { mode: 0o644 });
    return { base, count: opts.count, release: () => rmSync(file, { force: true }) };
  });
}

/** Every claim whose daemon still runs; stale ones are removed on the way. */
function liveClaims(dir: string): Claim[] {
  const out: Claim[] = [];
  for (const name of readdirSync(dir)) {
    const m = /^(\d+)-(\d+)$/.exec(name);
    if (!m) continue;
    const file = join(dir, name);
    let owner: { pid: number; start: string; stateDir: string } | null = null;
    try {
      owner = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      // Half-written or garbage: treated as stale.
    }
    // The same pid with the same start time is the same process (a reused pid has another).
    if (!owner || startTime(owner.pid) !== owner.start) {
      rmSync(file, { force: true });
      continue;
    }
    out.push({ base: Number(m[1]), count: Number(m[2]) - Number(m[1]) + 1, pid: owner.pid, stateDir: String(owner.stateDir) });
  }
  return out;
}

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or null if it is gone. */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** Runs `fn` holding the directory's lock file (taken over when a crashed holder left it behind). */
function withLock<T>(dir: string, fn: () => T): T {
  const lock = join(dir, ".lock");
  for (let attempt = 0; ; attempt++) {
    try {
      closeSync(openSync(lock, "wx", 0o600));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const age = (() => {
        try {
          return Date.now() - statSync(lock).mtimeMs;
        } catch {
          return 0;
        }
      })();
      if (age > 10_000) rmSync(lock, { force: true });
      else if (attempt > 500) throw new UidRangeError(`${lock} is held by another daemon starting up; try again`);
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}
