import { Relay, type Endpoint } from "../streams/relay.js";
import type { Logger } from "../util/log.js";
import { sameLimits, type SandboxLimits } from "./limits.js";
import type { Sandbox } from "./sandbox.js";

/**
 * Default-limit sandboxes started ahead of demand and owned by nobody until `take` hands one
 * out, so `Sandbox.create()` costs milliseconds. Refills run one sandbox at a time so they never
 * compete for the CPU in bursts.
 */
export class WarmPool {
  private readonly ready: Sandbox[] = [];
  /** The refill under way, if any: `close` waits for it so no sandbox starts behind its back. */
  private filling: Promise<void> | null = null;
  private closing = false;

  constructor(
    private readonly size: number,
    private readonly launch: () => Promise<Sandbox>,
    private readonly log: Logger,
  ) {}

  /** A pre-started sandbox with exactly these limits, if there is one; the pool refills behind it. */
  take(limits: SandboxLimits): Sandbox | null {
    const i = this.ready.findIndex((sb) => !sb.stopped && sameLimits(sb.limits, limits));
    if (i < 0) return null;
    const [sb] = this.ready.splice(i, 1);
    setImmediate(() => void this.fill());
    return sb!;
  }

  /** A pooled sandbox ended on its own: forget it and start another. */
  forget(sb: Sandbox): void {
    const i = this.ready.indexOf(sb);
    if (i < 0) return;
    this.ready.splice(i, 1);
    setImmediate(() => void this.fill());
  }

  fill(): Promise<void> {
    if (this.filling || this.closing) return this.filling ?? Promise.resolve();
    this.filling = this.refill().finally(() => (this.filling = null));
    return this.filling;
  }

  /** Stops refilling and waits for a launch in flight; the sandboxes themselves die with the rest. */
  async close(): Promise<void> {
    this.closing = true;
    await this.filling;
  }

  private async refill(): Promise<void> {
    try {
      while (!this.closing && this.ready.length < this.size) {
        const sb = await this.launch();
        await warmUp(sb);
        if (!sb.stopped) this.ready.push(sb);
      }
    } catch (err) {
      if (!this.closing) this.log.warn(`could not warm a sandbox: ${(err as Error).message}`);
    }
  }
}

/** One throwaway spawn, with piped output like an owner's, warms the supervisor's spawning path. */
async function warmUp(sb: Sandbox): Promise<void> {
  const discard: Endpoint = { data() {}, end() {}, credit() {}, abort() {}, congestion: () => null };
  const streams = [sb.link.allocStream(), sb.link.allocStream()];
  for (const sid of streams) sb.link.addRelay(sid, new Relay(sb.link.endpoint(sid), discard, () => {}, () => sb.link.removeRelay(sid)), true);
  const { pid } = (await sb.link.call("process.spawn", { cmd: "/bin/true", env: {}, stdin: null, stdout: streams[0], stderr: streams[1] })) as { pid: number };
  // No client tracks it, so its exit is kept as an early one; wait for it and drop it.
  await new Promise<void>((resolve) => {
    const check = () => (sb.processes.takeUntracked(pid) || sb.stopped ? resolve() : setTimeout(check, 2));
    check();
  });
}
