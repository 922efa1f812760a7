/**
 * Volumes and snapshots through the gateway. Each lives on the daemon host that made it, and a
 * sandbox mounts (or boots from) only what its own host holds:
 *
 * - an id names its host ("vol_<prefix>_...", fleet/ids.ts); a slug, or an id a daemon made
 *   without a prefix, is looked for on every host;
 * - a new volume goes to the host with the most free disk (the next one if that host refuses it
 *   for want of room), or, made from a snapshot, to the snapshot's; an image is built the same
 *   way; a new slug is refused when some host already has it for this token, so through the
 *   gateway a slug names one thing in the fleet (two made directly on two daemons stay
 *   reachable by id; their slug is refused as ambiguous, naming the hosts); a sandbox's
 *   snapshot is checked the same way;
 * - a sandbox that names volumes or a root is created on their host;
 * - lists ask every host and merge, paged as a daemon pages (cursor: the last item's id).
 */
import { ErrorCodes, type MethodName, type ParamsOf, type ResultOf } from "@sbx/protocol";
import type { Host } from "../fleet/host.js";
import { createSandbox } from "./fanout.js";
import type { Session } from "./session.js";

type Id = number | string;
type RpcError = { code: number; message: string; data?: unknown };
type Kind = "volume" | "snapshot";
type Located = { host: Host } | { error: RpcError };

/** How long the gateway waits for each host while it looks for a slug or lists. */
const ASK_TIMEOUT_MS = 15_000;
/** The page size the gateway asks each host for while it lists (the protocol's largest). */
const HOST_PAGE = 100;

const noun = (kind: Kind | null) => kind ?? "volume or snapshot";

/** What each up host says to `${kind}.get` of `ref`: where it is found, and the hosts that could not tell. */
async function askHosts(session: Session, id: Id, ref: string, kinds: readonly Kind[]): Promise<{ found: Host[]; silent: string[] }> {
  const found: Host[] = [];
  const silent: string[] = [];
  await Promise.all(
    session.fleet.up().map(async (host) => {
      for (const kind of kinds) {
        // A client gone meanwhile: no connection is opened for it any more (none would be closed).
        if (session.isClosed) return void silent.push(host.label);
        const answer = await session
          .askerFor(host)
          .request(`${kind}.get`, { idOrSlug: ref }, id, ASK_TIMEOUT_MS)
          .catch((err: Error) => ({ error: { code: ErrorCodes.Unavailable, message: err.message } }));
        if (answer.result) return void found.push(host);
        // Not there (or a rootless daemon, which holds no volumes): ask the next kind, then stop.
        if (answer.error.code !== ErrorCodes.VolumeNotFound && answer.error.code !== ErrorCodes.Unsupported) return void silent.push(host.label);
      }
    }),
  );
  return { found, silent };
}

/** The host holding the volume or snapshot `ref` names (an id or a slug), or the error that answers the call. */
export async function locate(session: Session, id: Id, ref: string, kind: Kind | null): Promise<Located> {
  const where = session.fleet.lookup(ref);
  if (where && "host" in where) return { host: where.host };
  if (where) return { error: { code: ErrorCodes.Unavailable, message: `host lost: ${noun(kind)} '${ref.slice(0, 128)}' is on the sbx daemon ${where.lost.label}, which went away (${where.lost.reason})` } };
  const { found, silent } = await askHosts(session, id, ref, kind ? [kind] : ["volume", "snapshot"]);
  if (found.length === 1) return { host: found[0]! };
  if (found.length > 1) {
    const hosts = found.map((h) => h.label).join(", ");
    return { error: { code: ErrorCodes.InvalidParams, message: `'${ref.slice(0, 128)}' is the slug of a ${noun(kind)} on each of ${found.length} sbx hosts (${hosts}): name it by its id` } };
  }
  // The daemon's own words; but not found is not said while a host that may hold it cannot be asked.
  const unknown = silent.length + session.fleet.down();
  if (unknown > 0) {
    return { error: { code: ErrorCodes.Unavailable, message: `no ${noun(kind)} '${ref.slice(0, 128)}' on the sbx daemons this gateway can reach; ${unknown} cannot be reached now, and it may be on one of them` } };
  }
  return { error: { code: ErrorCodes.VolumeNotFound, message: `no ${noun(kind)} '${ref.slice(0, 128)}'` } };
}

/** The daemon's refusal of a slug this token already has, when some host has it; null when none does. */
export async function slugTaken(session: Session, id: Id, slug: string): Promise<RpcError | null> {
  const { found } = await askHosts(session, id, slug, ["volume", "snapshot"]);
  if (found.length === 0) return null;
  return { code: ErrorCodes.InvalidParams, message: `params.slug: '${slug}' is already the slug of a volume or snapshot of this token (on the sbx host ${found[0]!.label})` };
}

/** volume.get/delete/resize/snapshot and snapshot.get/delete: to the host holding `idOrSlug`. */
export async function routeByRef(session: Session, id: Id, text: string, msg: { id: Id; method: string }, method: MethodName, params: { idOrSlug: string; slug?: string }): Promise<void> {
  const place = await locate(session, id, params.idOrSlug, method.startsWith("snapshot.") ? "snapshot" : "volume");
  if ("error" in place) return session.replyError(id, place.error);
  if (method === "volume.snapshot") {
    const taken = await slugTaken(session, id, params.slug!);
    if (taken) return session.replyError(id, taken);
  }
  session.forwardTo(place.host, text, msg);
}

/** Refusals another host may not give: full or over the token's per-host limit (ResourceLimit), busy or going away (Unavailable), broken (InternalError), without volumes or an image builder (Unsupported). */
const TRY_ANOTHER = new Set<number>([ErrorCodes.ResourceLimit, ErrorCodes.Unavailable, ErrorCodes.InternalError, ErrorCodes.Unsupported]);
/** Hosts a new volume or image is offered to before the last refusal is the answer. */
const MAX_ATTEMPTS = 3;

/**
 * volume.create and image.build: on the snapshot's host (`from`), else where the most disk is
 * free, and if that host refuses it for want of room (or of an image builder), on the next one.
 * A daemon that refuses leaves nothing behind, so trying again elsewhere is safe.
 */
export async function routeNew(session: Session, id: Id, method: "volume.create" | "image.build", params: { slug: string; from?: string }): Promise<void> {
  let order: Host[];
  if (params.from !== undefined) {
    const place = await locate(session, id, params.from, "snapshot");
    if ("error" in place) return session.replyError(id, place.error);
    order = [place.host];
  } else {
    const placed = await session.fleet.placeVolume();
    if (!placed.order[0]) {
      const why = placed.refusals.length ? `: ${placed.refusals.slice(0, 10).join("; ")}` : ` (${session.fleet.describe()})`;
      return session.replyError(id, { code: ErrorCodes.Unavailable, message: `no sbx host takes new volumes now${why}` });
    }
    order = placed.order.slice(0, MAX_ATTEMPTS);
  }
  const taken = await slugTaken(session, id, params.slug);
  if (taken) return session.replyError(id, taken);
  let last: RpcError = { code: ErrorCodes.Unavailable, message: `every host chosen for this ${method === "image.build" ? "image" : "volume"} went away before it could make it` };
  for (const host of order) {
    if (session.isClosed) return;
    // The client's own connection: an image build's progress reaches the client on it as the daemon sends it.
    const answer: { result?: unknown; error?: RpcError } = await session
      .upstreamFor(host)
      .request(method, params, id)
      .catch((err: Error) => ({ error: { code: ErrorCodes.Unavailable, message: `host lost during ${method}: ${err.message}` } }));
    if (!answer.error) return session.reply(id, answer.result);
    last = answer.error;
    if (!TRY_ANOTHER.has(last.code)) break;
    session.log.info(`${method} refused by ${host.label} (${last.message}); trying another host`);
  }
  session.replyError(id, last);
}

/** sandbox.create naming volumes or a root: on the one host holding them all. */
export async function createWithVolumes(session: Session, id: Id, params: ParamsOf<"sandbox.create">): Promise<void> {
  const refs = [...Object.values(params.volumes ?? {}), ...(params.root === undefined ? [] : [params.root])];
  const places = await Promise.all(refs.map((ref) => locate(session, id, ref, null)));
  const failed = places.find((p): p is { error: RpcError } => "error" in p);
  if (failed) return session.replyError(id, failed.error);
  const hosts = [...new Set(places.map((p) => (p as { host: Host }).host))];
  if (hosts.length > 1) {
    const where = refs.map((ref, i) => `'${ref}' on ${(places[i] as { host: Host }).host.label}`).join(", ");
    return session.replyError(id, { code: ErrorCodes.InvalidParams, message: `params.volumes: a sandbox mounts only what its own host holds, and these are on ${hosts.length} hosts: ${where}` });
  }
  return createSandbox(session, id, params, hosts[0]);
}

type ListResult = ResultOf<"volume.list"> | ResultOf<"snapshot.list">;
type Item = ListResult["items"][number];

/** Every item `method` lists on `host` for this token (page after page). */
async function allOf(session: Session, id: Id, host: Host, method: "volume.list" | "snapshot.list", search: string | undefined): Promise<Item[]> {
  const items: Item[] = [];
  let cursor: string | null = null;
  do {
    if (session.isClosed) throw Object.assign(new Error("the client connection closed"), { rpc: { code: ErrorCodes.Unavailable, message: "the client connection closed" } });
    const answer: { result?: ListResult; error?: RpcError } = await session
      .upstreamFor(host)
      .request(method, { ...(search === undefined ? {} : { search }), limit: HOST_PAGE, ...(cursor === null ? {} : { cursor }) }, id, ASK_TIMEOUT_MS)
      .catch((err: Error) => ({ error: { code: ErrorCodes.Unavailable, message: `${method}: the sbx daemon ${host.label} did not answer (${err.message})` } }));
    // A rootless daemon holds no volumes.
    if (answer.error?.code === ErrorCodes.Unsupported) return items;
    if (answer.error) throw Object.assign(new Error(answer.error.message), { rpc: answer.error });
    items.push(...answer.result!.items);
    cursor = answer.result!.nextCursor;
  } while (cursor !== null);
  return items;
}

/** volume.list and snapshot.list: every host's, merged and paged as one daemon pages its own. */
export async function listAll(session: Session, id: Id, method: "volume.list" | "snapshot.list", p: ParamsOf<"volume.list">): Promise<void> {
  let all: Item[];
  try {
    all = (await Promise.all(session.fleet.up().map((host) => allOf(session, id, host, method, p.search)))).flat();
  } catch (err) {
    return session.replyError(id, (err as { rpc: RpcError }).rpc);
  }
  all.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  let start = 0;
  if (p.cursor !== undefined) {
    start = all.findIndex((item) => item.id === p.cursor) + 1;
    const kind = method === "volume.list" ? "volume" : "snapshot";
    if (start === 0) return session.replyError(id, { code: ErrorCodes.InvalidParams, message: `params.cursor: '${p.cursor.slice(0, 128)}' is not a cursor of this list (it names no ${kind} of this token)` });
  }
  const limit = p.limit ?? 30;
  const items = all.slice(start, start + limit);
  session.reply(id, { items, nextCursor: start + limit < all.length ? items[items.length - 1]!.id : null });
}
