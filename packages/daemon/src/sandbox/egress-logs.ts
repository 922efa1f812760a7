import { hostPort } from "../egress/policy/host.js";
import type { EgressJournal } from "../egress/proxy/journal.js";
import type { EgressProxy } from "../egress/proxy/proxy.js";
import { LogBudget, type Logger } from "../util/log.js";
import type { DaemonMetrics } from "../metrics/metrics.js";
import type { Sandbox } from "./sandbox.js";

/** Lines one sandbox's egress may put in the daemon's log per minute, per kind (refused secrets, proxy failures). */
const EGRESS_LINES_PER_MINUTE = 100;

/** A log writer that keeps to the budget, saying once how many `what` it held back. */
function budgeted(write: (message: string) => void, what: string): (message: string) => void {
  const budget = new LogBudget(EGRESS_LINES_PER_MINUTE, 60_000);
  return (message) => {
    const line = budget.take();
    if (line.suppressed > 0) write(`${line.suppressed} more ${what} were not logged`);
    if (line.allowed) write(message);
  };
}

/**
 * Connects a sandbox's egress proxy and journal to the daemon's log and to the sandbox's network
 * listeners. A sandbox may provoke refusals and failures as often as it likes; the daemon's log
 * takes a bounded share of each kind (the egress log keeps them all).
 */
export function wireEgress(sb: Sandbox, egress: { proxy: EgressProxy; journal: EgressJournal }, log: Logger, metrics: DaemonMetrics): void {
  const refusals = budgeted((m) => log.warn(`sandbox ${sb.id}: ${m}`), "refusals of requests carrying secrets (the egress log keeps them all)");
  egress.proxy.onInternalError = budgeted((m) => log.error(`sandbox ${sb.id}: egress proxy: ${m}`), "failures");
  egress.proxy.onBound = budgeted((m) => log.warn(`sandbox ${sb.id}: egress: ${m}`), "connections turned away at a bound");
  // Refusals reach the daemon's log too (a tool that retries quietly is otherwise a mystery to the operator).
  const denied = budgeted((m) => log.warn(`sandbox ${sb.id}: ${m}`), "egress refusals (the egress log keeps them all)");
  egress.journal.onEvent = (event, kind) => {
    metrics.egress.inc({ decision: event.allowed ? "allowed" : "refused", kind });
    // Names the secret and the host, never the value.
    if (event.secret) refusals(`egress refused a request carrying secret ${event.secret}: ${event.reason}`);
    else if (!event.allowed) denied(`egress refused ${event.method} ${hostPort(event.host, event.port)}: ${event.reason}`);
    sb.networkEvent(event);
  };
}
