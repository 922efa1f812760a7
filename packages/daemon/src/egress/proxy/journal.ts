/** One egress decision, as the log and notifications report it. */
export interface EgressEvent {
  time: string;
  host: string;
  port: number;
  allowed: boolean;
  /** Why it was refused (absent when allowed). */
  reason?: string;
  /** "CONNECT" for tunnels, the HTTP method for plain requests. */
  method: string;
  /** The secret whose placeholder the request carried, when that is why it was refused. */
  secret?: string;
}

/** Per-sandbox egress counters and a bounded log of recent decisions. */
export class EgressJournal {
  requests = 0;
  blocked = 0;
  bytesOut = 0;
  bytesIn = 0;
  private readonly recent: EgressEvent[] = [];
  /** Told of every decision (the daemon's log, metrics and the sandbox's watching clients), with its kind. */
  onEvent: (event: EgressEvent, kind: string) => void = () => {};

  constructor(private readonly capacity = 500) {}

  /**
   * Records one decision. `kind` names a refusal's class for counting (the policy's kind, such as
   * "not-allowed" or "private"); it stays out of the event, whose reason says it in words.
   */
  record(event: Omit<EgressEvent, "time">, kind?: string): void {
    const full = { time: new Date().toISOString(), ...event };
    this.requests++;
    if (!event.allowed) this.blocked++;
    this.recent.push(full);
    if (this.recent.length > this.capacity) this.recent.shift();
    this.onEvent(full, event.allowed ? "allowed" : event.secret ? "secret" : (kind ?? "other"));
  }

  log(limit = this.capacity): EgressEvent[] {
    return this.recent.slice(-limit);
  }

  counters() {
    return { requests: this.requests, blocked: this.blocked, bytesOut: this.bytesOut, bytesIn: this.bytesIn };
  }
}
