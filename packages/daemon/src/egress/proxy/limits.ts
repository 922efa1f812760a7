/**
 * What one sandbox's egress may make the daemon hold: connections (each costs the daemon two
 * file descriptors), bytes read whole (compressed request bodies checked for placeholders,
 * small responses scrubbed at once) and decoding work. Each is bounded per sandbox and again
 * daemon-wide, so a hostile sandbox meets its own limits long before it can cost a neighbour
 * anything. See the README's "Bounds" table for the config keys.
 */

import { Dialer } from "./dial.js";

/** The bounds, as the daemon's config sets them (`egress.*`). */
export interface EgressBounds {
  /** Open proxy connections (tunnels included) per sandbox. */
  connectionsPerSandbox: number;
  /** Open proxy connections over all sandboxes; derived from the daemon's open-file limit when not set. */
  connections: number;
  /**
   * Open proxy connections over all sandboxes of one token (tenant), so that one tenant's sandboxes
   * together cannot take every connection the daemon has; null: a quarter of `connections`.
   */
  connectionsPerToken: number | null;
  /** A tunnel (CONNECT) that moves no byte either way for this long is closed. */
  idleMs: number;
  /** A connection that has sent no complete request (or CONNECT) within this long is closed. */
  firstRequestMs: number;
  /** Bytes the proxy holds whole for one sandbox at once, and over all sandboxes. */
  heldBytesPerSandbox: number;
  heldBytes: number;
}

export const DEFAULT_BOUNDS: EgressBounds = {
  connectionsPerSandbox: 256,
  connections: 16384,
  connectionsPerToken: null,
  idleMs: 15 * 60_000,
  firstRequestMs: 10_000,
  heldBytesPerSandbox: 32 << 20,
  heldBytes: 256 << 20,
};

/**
 * A count of something scarce (connections, bytes) with a limit, optionally inside a parent
 * budget that every take also draws on: a sandbox's inside the daemon's.
 *
 * @example
 * const daemon = new Budget(256 << 20);
 * const sandbox = new Budget(32 << 20, daemon);
 * if (sandbox.take(chunk.length)) hold(chunk); else refuse();
 */
export class Budget {
  private used = 0;

  constructor(readonly limit: number, private parent: Budget | null = null) {}

  get inUse(): number {
    return this.used;
  }

  /** The first budget, this one or a parent, with no room for one more; null when all have room. */
  get exhausted(): Budget | null {
    if (this.used + 1 > this.limit) return this;
    return this.parent?.exhausted ?? null;
  }

  /** Draws on `parent` from now on, what this budget holds moving with it (the new parent may be over its limit until that comes back). */
  moveUnder(parent: Budget): void {
    this.parent?.give(this.used);
    this.parent = parent;
    parent.add(this.used);
  }

  private add(n: number): void {
    this.used += n;
    this.parent?.add(n);
  }

  /** Takes `n` if this budget and every parent have room; otherwise takes nothing and says false. */
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    if (this.parent && !this.parent.take(n)) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    const back = Math.min(n, this.used);
    this.used -= back;
    this.parent?.give(back);
  }
}

/**
 * At most `size` holders at once; others wait their turn in order. A sandbox that queues
 * behind its own slot of 1 has at most one waiter in the daemon's queue, so the daemon's queue
 * takes sandboxes in turn however many requests one of them sends.
 */
export class Slots {
  private busy = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly size: number) {}

  /** Resolves with the function that frees the slot (call it exactly once). */
  async acquire(): Promise<() => void> {
    if (this.busy >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.busy++;
    let freed = false;
    return () => {
      if (freed) return;
      freed = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    };
  }
}

/** The daemon's share of every sandbox's egress: one of each, handed to each sandbox's proxy. */
export class EgressShared {
  readonly connections: Budget;
  readonly held: Budget;
  /** Compressed request bodies decoded at once (the work runs on libuv's small thread pool, which DNS and files share). */
  readonly decodes = new Slots(2);
  /** Each token's share of `connections` (see EgressBounds.connectionsPerToken), made at its first sandbox. */
  private readonly tokens = new Map<string, Budget>();
  private addresses: string[] = [];
  private addressesAt = 0;

  constructor(
    readonly bounds: EgressBounds,
    private readonly readAddresses: () => string[],
    /** How every proxy reaches what it allowed: directly, or through the operator's upstream proxy. */
    readonly dialer: Dialer = new Dialer(null),
  ) {
    this.connections = new Budget(bounds.connections);
    this.held = new Budget(bounds.heldBytes);
  }

  /** This host's own addresses, re-read at most once a second. */
  hostAddresses(now = Date.now()): string[] {
    if (now - this.addressesAt > 1000) {
      this.addresses = this.readAddresses();
      this.addressesAt = now;
    }
    return this.addresses;
  }

  /** The connections of every sandbox of `owner` (a token), drawing on the daemon's. */
  forToken(owner: string): Budget {
    let budget = this.tokens.get(owner);
    if (!budget) this.tokens.set(owner, (budget = new Budget(this.bounds.connectionsPerToken ?? Math.max(this.bounds.connectionsPerSandbox, Math.floor(this.bounds.connections / 4)), this.connections)));
    return budget;
  }

  /** A sandbox's own budgets, drawing on the daemon's (and on its token's, once it has an owner). */
  forSandbox(): SandboxEgressBudgets {
    return {
      connections: new Budget(this.bounds.connectionsPerSandbox, this.connections),
      held: new Budget(this.bounds.heldBytesPerSandbox, this.held),
      decode: new Slots(1),
      shared: this,
    };
  }
}

export interface SandboxEgressBudgets {
  connections: Budget;
  held: Budget;
  /** One decode at a time per sandbox, before it queues for the daemon's. */
  decode: Slots;
  shared: EgressShared;
}

/** Frees a sandbox slot and a daemon slot together. */
export async function decodeSlot(budgets: SandboxEgressBudgets): Promise<() => void> {
  const own = await budgets.decode.acquire();
  const daemon = await budgets.shared.decodes.acquire();
  return () => {
    daemon();
    own();
  };
}
