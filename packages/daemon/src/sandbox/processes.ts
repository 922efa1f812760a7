import { constants as osConstants } from "node:os";
import type { NotificationParams } from "@sbx/protocol";
import type { Client } from "./sandbox.js";

type ExitStatus = NotificationParams<"process.exit">["status"];

/** Exits that arrived before their spawn call finished are kept, at most this many. */
const MAX_EARLY_EXITS = 1024;
/** SIGKILLs sent through the API and not yet seen exit, at most this many are remembered. */
const MAX_SIGKILLED = 4096;

/**
 * A sandbox's running processes and who hears of their exit: the client that spawned each, even
 * when the exit wins the race with the spawn's answer. It also says which SIGKILLs were the
 * kernel's OOM killer: the cgroup counts OOM kills, and a SIGKILL the API sent is not one.
 */
export class ProcessTable {
  private readonly owners = new Map<number, Client>();
  private readonly early = new Map<number, ExitStatus>();
  private readonly sigkilled = new Set<number>();
  /** OOM kills already attributed to a process. */
  private oomKillsSeen = 0;

  constructor(
    private readonly sandboxId: string,
    /** The cgroup's count of OOM kills so far (0 without cgroups). */
    private readonly oomKills: () => number,
    /** Told of every exit (the sandbox's kept outputs record the status). */
    private readonly onExit: (pid: number, status: ExitStatus) => void = () => {},
  ) {}

  /** `client` spawned `pid`: it hears of the exit, now if the exit came first. */
  track(pid: number, client: Client): void {
    const early = this.early.get(pid);
    if (!early) {
      this.owners.set(pid, client);
      return;
    }
    this.early.delete(pid);
    client.notify("process.exit", { sandbox: this.sandboxId, pid, status: early });
  }

  /** The API is sending `pid` SIGKILL: its death by SIGKILL is not an OOM kill. */
  killing(pid: number): void {
    if (this.sigkilled.size < MAX_SIGKILLED) this.sigkilled.add(pid);
  }

  /** The supervisor reported `pid` ended; the exit goes to its spawner. Returns the status it got. */
  exited(pid: number, code: number | null, signal: string | null): ExitStatus {
    const signum = signal ? ((osConstants.signals as Record<string, number>)[signal] ?? 0) : 0;
    // Read the counter on every exit, so an OOM kill of a grandchild is used up where it happened
    // and never blamed on a later SIGKILL the API sent.
    const kills = this.oomKills();
    const fresh = kills > this.oomKillsSeen;
    this.oomKillsSeen = kills;
    const sentByUs = this.sigkilled.delete(pid);
    const status: ExitStatus = { success: code === 0, code: code ?? 128 + signum, signal, oom: signal === "SIGKILL" && fresh && !sentByUs };
    this.onExit(pid, status);
    const client = this.owners.get(pid);
    if (!client) {
      if (this.early.size >= MAX_EARLY_EXITS) this.early.delete(this.early.keys().next().value!);
      this.early.set(pid, status);
      return status;
    }
    this.owners.delete(pid);
    if (!client.closed) client.notify("process.exit", { sandbox: this.sandboxId, pid, status });
    return status;
  }

  /** Whether the cgroup counted an OOM kill no process exit has accounted for (the supervisor's own death, say). */
  unattributedOom(): boolean {
    return this.oomKills() > this.oomKillsSeen;
  }

  /** `client` attached to `pid` again: it, not the spawner, hears of the exit. */
  reattach(pid: number, client: Client): void {
    if (this.owners.has(pid)) this.owners.set(pid, client);
  }

  /** Takes the early exit of `pid` nobody will track (the warm pool's own spawn); false if it has not come yet. */
  takeUntracked(pid: number): boolean {
    return this.early.delete(pid);
  }
}
