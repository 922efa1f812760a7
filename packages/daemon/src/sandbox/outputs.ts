/**
 * The processes of a sandbox a client may attach to again: each one's command, exit status once
 * it has one, and its stdout/stderr taps (streams/output-tap.ts), for process.list and
 * process.attach. Bounded: the oldest ended processes are forgotten first.
 */
import type { NotificationParams } from "@sbx/protocol";
import { DaemonError } from "../util/errors.js";
import { KEPT, KEPT_PER_SANDBOX, KeptBudget, OutputTap } from "../streams/output-tap.js";
import type { Endpoint, Relay } from "../streams/relay.js";
import type { SupervisorLink } from "./supervisor-link.js";

type ExitStatus = NotificationParams<"process.exit">["status"];
type Field = "stdout" | "stderr";

/** Processes remembered per sandbox (running ones are never dropped before ended ones). */
const MAX_RECORDS = 256;

interface ProcRecord {
  pid: number;
  cmd: string;
  args: string[];
  startedAt: Date;
  status: ExitStatus | null;
  stdout: OutputTap | null;
  stderr: OutputTap | null;
}

export class ProcessOutputs {
  /** Taps of spawns not yet answered, by sandbox-side stream id. */
  private readonly pending = new Map<number, OutputTap>();
  private readonly records = new Map<number, ProcRecord>();
  /** Exits that came before their spawn's answer (a quick process), by pid; bounded. */
  private readonly early = new Map<number, ExitStatus>();
  /** What all its taps keep together (KEPT_PER_SANDBOX). */
  private readonly budget = new KeptBudget();

  /** A tap for the stream `sid` of a spawn under way. */
  tapFor(link: SupervisorLink, sid: number, onViolation: (reason: string) => void): OutputTap {
    link.streams.reclaim ??= (bytes) => this.budget.reclaimUnread(bytes);
    const tap = new OutputTap(link, sid, onViolation, this.budget);
    this.pending.set(sid, tap);
    return tap;
  }

  /** The spawn answered `pid`: its taps now belong to it. */
  adopt(pid: number, cmd: string, args: string[], sids: { stdout?: number; stderr?: number }): void {
    const take = (sid?: number) => {
      if (sid === undefined) return null;
      const tap = this.pending.get(sid) ?? null;
      this.pending.delete(sid);
      return tap;
    };
    const status = this.early.get(pid) ?? null;
    this.early.delete(pid);
    this.records.set(pid, { pid, cmd, args, startedAt: new Date(), status, stdout: take(sids.stdout), stderr: take(sids.stderr) });
    this.prune();
  }

  /** The spawn failed: its taps carry nothing. */
  drop(sids: number[]): void {
    for (const sid of sids) {
      const tap = this.pending.get(sid);
      if (tap) this.budget.forget(tap, true);
      this.pending.delete(sid);
    }
  }

  exited(pid: number, status: ExitStatus): void {
    const r = this.records.get(pid);
    if (r) r.status = status;
    else {
      // Its spawn has not answered yet (or it was no client's: the warm pool's, a REPL's).
      if (this.early.size >= MAX_RECORDS) this.early.delete(this.early.keys().next().value!);
      this.early.set(pid, status);
    }
  }

  list() {
    return [...this.records.values()].map((r) => ({
      pid: r.pid,
      cmd: r.cmd,
      args: r.args,
      startedAt: r.startedAt.toISOString(),
      running: r.status === null,
      ...(r.status ? { status: r.status } : {}),
      ...(r.stdout ? { stdout: { start: r.stdout.start, end: r.stdout.total } } : {}),
      ...(r.stderr ? { stderr: { start: r.stderr.start, end: r.stderr.total } } : {}),
    }));
  }

  /** Checks a process.attach before any of its streams is registered: the pid, each stream, each offset. */
  check(pid: number, from: Partial<Record<Field, number>>, fields: Field[]): ProcRecord {
    const r = this.records.get(pid);
    if (!r) throw new DaemonError("ProcessNotFound", `no process with pid ${pid} that this sandbox's clients started (or it ended long ago)`);
    for (const f of fields) {
      const tap = r[f];
      if (!tap) throw new DaemonError("InvalidParams", `params.${f}: process ${pid} was started with ${f} not piped; there is nothing to attach to`);
      const at = from[f];
      if (at === undefined) continue;
      if (at > tap.total) throw new DaemonError("InvalidParams", `params.${f}From: ${at} is past the end of ${f} (${tap.total} bytes so far)`);
      if (at < tap.start) {
        throw new DaemonError("InvalidParams", `params.${f}From: bytes ${at}..${tap.start} of ${f} are no longer kept (the daemon keeps the last ${KEPT} bytes of each stream, ${KEPT_PER_SANDBOX} of a sandbox's; the earliest now is offset ${tap.start})`);
      }
    }
    return r;
  }

  /** Attaches `client` to one stream of `pid` from `from` (default: everything kept). */
  attach(r: ProcRecord, field: Field, from: number | undefined, client: Endpoint, onClose: () => void): { relay: Relay; from: number } {
    const tap = r[field]!;
    const start = from ?? tap.start;
    return { relay: tap.attach(client, start, onClose), from: start };
  }

  private prune(): void {
    if (this.records.size <= MAX_RECORDS) return;
    for (const [pid, r] of this.records) {
      if (this.records.size <= MAX_RECORDS) return;
      if (r.status !== null) {
        for (const tap of [r.stdout, r.stderr]) if (tap) this.budget.forget(tap);
        this.records.delete(pid);
      }
    }
  }
}
