import { parseDuration } from "../util/units.js";
import { invalid } from "../util/errors.js";
import type { Client } from "./sandbox.js";

/** The longest a sandbox may be given to live from now. */
export const MAX_TIMEOUT_MS = 7 * 24 * 3_600_000;

/** Checks `create`'s timeout: null for "session" (the default), else milliseconds. */
export function timeoutOf(timeout: string | undefined): number | null {
  if (!timeout || timeout === "session") return null;
  const ms = parseDuration(timeout);
  if (ms < 1000 || ms > MAX_TIMEOUT_MS) throw invalid("timeout", "must be between 1s and 168h");
  return ms;
}

/**
 * When a sandbox ends on its own: either with the connection that holds its session (after a
 * grace period in which another connection may adopt it), or at a fixed time. One timer at most
 * runs, and `stop` clears it.
 */
export class Lifetime {
  private expiry: Date | null = null;
  /** The connection a session sandbox lives with; null once it has a time to end at. */
  private session: Client | null = null;
  /** The expiry, or the grace period of a session whose connection went away. */
  private timer: NodeJS.Timeout | null = null;
  private orphaned = false;

  constructor(
    private readonly graceMs: number,
    private readonly end: (reason: "timeout" | "session") => void,
  ) {}

  get expiresAt(): Date | null {
    return this.expiry;
  }

  /** Lives as long as `client`'s connection (and the grace period after it). */
  bindTo(client: Client): void {
    this.session = client;
  }

  /** Ends at `at` (ms since the epoch), whatever session it had. */
  endAt(at: number): void {
    this.clear();
    this.session = null;
    this.orphaned = false;
    this.expiry = new Date(at);
    this.timer = setTimeout(() => this.end("timeout"), Math.max(0, at - Date.now()));
  }

  /** Sets the end to `duration` from now, as Deno's extendTimeout does (a session sandbox becomes a timed one); returns it. */
  extend(duration: string): Date {
    const until = Date.now() + parseDuration(duration);
    if (until - Date.now() > MAX_TIMEOUT_MS) throw invalid("duration", "would put the expiry more than 168h from now");
    this.endAt(until);
    return this.expiry!;
  }

  /** A connection picked the sandbox up: a session sandbox whose connection left is adopted by it. */
  joined(client: Client): void {
    if (!this.orphaned) return;
    this.clear();
    this.orphaned = false;
    this.session = client;
  }

  /** A connection closed: if it held the session, the sandbox ends after the grace period unless adopted. */
  left(client: Client): void {
    if (this.session !== client || this.orphaned) return;
    this.orphaned = true;
    this.timer = setTimeout(() => this.end("session"), this.graceMs);
  }

  stop(): void {
    this.clear();
  }

  private clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
