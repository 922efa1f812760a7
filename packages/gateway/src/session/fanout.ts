/**
 * The two calls the gateway answers by itself: sandbox.create (placement, and a next host if
 * the chosen one turns it down; or the one host holding the volumes it names) and sandbox.list
 * (every host asked, the answers merged).
 */
import { ErrorCodes, type ParamsOf, type ResultOf } from "@sbx/protocol";
import { hostPrefixOf } from "../fleet/ids.js";
import { requestOf } from "../fleet/placement.js";
import type { Host } from "../fleet/host.js";
import type { Session } from "./session.js";

/** Hosts a create is offered to before the last refusal is the answer. */
const MAX_ATTEMPTS = 3;
/** Refusals that another host may not give: full (ResourceLimit), draining or lost (Unavailable), broken (InternalError). */
const TRY_ANOTHER = new Set<number>([ErrorCodes.ResourceLimit, ErrorCodes.Unavailable, ErrorCodes.InternalError]);
/** How long sandbox.list waits for each host. */
const LIST_TIMEOUT_MS = 15_000;

type Id = number | string;
type RpcError = { code: number; message: string; data?: unknown };
type ListAnswer = { result?: ResultOf<"sandbox.list">; error?: RpcError };

/** `only`: the one host the sandbox must go to (it holds the volumes the sandbox names); placement otherwise. */
export async function createSandbox(session: Session, id: Id, params: ParamsOf<"sandbox.create">, only?: Host): Promise<void> {
  const { order, refusals } = only ? reserved(only) : await session.fleet.place(requestOf(params));
  if (order.length === 0) {
    if (refusals.length === 0) return session.replyError(id, { code: ErrorCodes.Unavailable, message: `no sbx daemon is known to this gateway (${session.fleet.describe()})` });
    const shown = refusals.slice(0, 10).join("; ") + (refusals.length > 10 ? `; and ${refusals.length - 10} more` : "");
    return session.replyError(id, { code: ErrorCodes.ResourceLimit, message: `no sbx host has room for this sandbox: ${shown}` });
  }
  const hosts = order.slice(0, MAX_ATTEMPTS);
  // Attempts chain through callbacks, not awaits: the answer reaches the client from inside the
  // handler of the daemon's message, ahead of anything the daemon said after it.
  return new Promise<void>((done) => {
    let last: RpcError = { code: ErrorCodes.Unavailable, message: "every host chosen for this sandbox went away before it could start it" };
    const attempt = (i: number): void => {
      const host = hosts[i];
      if (!host || session.isClosed) {
        if (host && i === 0) host.placing--; // place()'s reservation, never used
        if (!session.isClosed) session.replyError(id, last);
        return done();
      }
      // place() reserved the first host; later ones are reserved here.
      if (i > 0) host.placing++;
      if (host.state !== "up") {
        host.placing--;
        return attempt(i + 1);
      }
      const up = session.upstreamFor(host);
      up.call("sandbox.create", params, id, (answer: Error | { result?: ResultOf<"sandbox.create">; error?: RpcError }) => {
        host.placing--;
        if (answer instanceof Error) {
          last = { code: ErrorCodes.Unavailable, message: `host lost during sandbox.create: ${answer.message}` };
          return attempt(i + 1);
        }
        if (answer.error) {
          last = answer.error;
          if (!TRY_ANOTHER.has(answer.error.code)) return attempt(hosts.length);
          session.log.info(`sandbox.create refused by ${host.label} (${answer.error.message}); trying another host`);
          return attempt(i + 1);
        }
        const sandbox = answer.result!;
        if (hostPrefixOf(sandbox.id) !== host.prefix) {
          // Unroutable: nobody could reach it again. Remove it rather than hand out a dead end.
          up.call("sandbox.kill", { id: sandbox.id }, id, () => {});
          session.log.error(`daemon ${host.label} made sandbox ${sandbox.id} without its id prefix '${host.prefix}'; killed it`);
          last = { code: ErrorCodes.InternalError, message: `the sbx daemon ${host.label} made a sandbox id without its id prefix '${host.prefix}' (was it restarted with another --id-prefix?)` };
          return attempt(i + 1);
        }
        up.touch(sandbox.id);
        session.created(sandbox.id);
        session.reply(id, sandbox);
        done();
      });
    };
    attempt(0);
  });
}

/** `host` as place() would hand it back: reserved (its `placing` raised), or why it cannot take the sandbox. */
function reserved(host: Host): { order: Host[]; refusals: string[] } {
  if (host.state !== "up") return { order: [], refusals: [`${host.label}: ${host.downReason || "connecting"}`] };
  host.placing++;
  return { order: [host], refusals: [] };
}

export async function listSandboxes(session: Session, id: Id, params: ParamsOf<"sandbox.list">): Promise<void> {
  const hosts = session.fleet.up();
  const answers = await Promise.all(
    hosts.map((host) =>
      session
        .upstreamFor(host)
        .request("sandbox.list", params, id, LIST_TIMEOUT_MS)
        .then(
          (answer: ListAnswer) => ({ host, answer }),
          (err: Error) => ({ host, answer: { error: { code: ErrorCodes.Unavailable, message: `sandbox.list: the sbx daemon ${host.label} did not answer (${err.message})` } } as ListAnswer }),
        ),
    ),
  );
  const failed = answers.find((a) => a.answer.error);
  if (failed) return session.replyError(id, failed.answer.error!);
  const all = answers.flatMap((a) => a.answer.result ?? []);
  all.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  session.reply(id, all);
}
