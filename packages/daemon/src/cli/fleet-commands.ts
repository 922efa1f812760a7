import { parse } from "./args.js";
import { flagDuration, stateDirFrom } from "./daemon.js";
import { OperatorLink } from "./operator.js";

export const FLEET_HELP = `sbx daemon drain [--state-dir DIR] [--url URL] [--wait 10m] [--undo]
                                        Refuses new sandboxes from now on (--undo: accepts them again); running
                                        ones go on. --wait: until none is left (exit 1 if some remain by then).
sbx daemon ready [--state-dir DIR] [--url URL] [--timeout 2s]
                                        Exit 0 if the daemon answers and is not draining (a readiness probe).`;

const COMMON = { "state-dir": { type: "string" }, config: { type: "string" }, url: { type: "string" } } as const;

function target(values: Record<string, any>): { stateDir: string; url?: string } {
  return { stateDir: stateDirFrom(values), ...(values.url ? { url: values.url } : {}) };
}

/** `sbx daemon drain`: what a Kubernetes preStop hook runs before the node or pod goes away. */
export async function drainCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { ...COMMON, wait: { type: "string" }, undo: { type: "boolean" } }, false);
  const waitMs = values.wait ? flagDuration("--wait", values.wait) : 0;
  const link = await OperatorLink.open({ ...target(values), timeoutMs: 10_000 });
  try {
    let info = await link.call("daemon.drain", { draining: !values.undo }, 10_000);
    process.stdout.write(`${info.draining ? "draining" : "not draining"}: ${info.capacity.sandboxes.live} sandboxes running\n`);
    if (values.undo || waitMs === 0) return 0;
    // A once-a-second look at one number for at most --wait: the hook has nothing else to do.
    for (const deadline = Date.now() + waitMs; info.capacity.sandboxes.live > 0 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
      info = await link.call("daemon.info", {}, 10_000);
    }
    const left = info.capacity.sandboxes.live;
    process.stdout.write(left === 0 ? "drained: no sandboxes left\n" : `${left} sandboxes still running after ${values.wait}\n`);
    return left === 0 ? 0 : 1;
  } finally {
    link.close();
  }
}

/** `sbx daemon ready`: a readiness probe lighter than `sbx doctor` (which runs a trial sandbox). */
export async function readyCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { ...COMMON, timeout: { type: "string" } }, false);
  const timeoutMs = values.timeout ? flagDuration("--timeout", values.timeout) : 2000;
  let link: OperatorLink;
  try {
    link = await OperatorLink.open({ ...target(values), timeoutMs });
  } catch (err) {
    process.stdout.write(`not ready: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    const info = await link.call("daemon.info", {}, timeoutMs);
    const { live, max } = info.capacity.sandboxes;
    if (info.draining) {
      process.stdout.write(`not ready: draining (${live} sandboxes running)\n`);
      return 1;
    }
    process.stdout.write(`ready: ${live} of at most ${max} sandboxes${info.idPrefix ? `, ids sbx_${info.idPrefix}_...` : ""}\n`);
    return 0;
  } catch (err) {
    process.stdout.write(`not ready: ${(err as Error).message}\n`);
    return 1;
  } finally {
    link.close();
  }
}
