/**
 * Bound connections: a WebSocket whose upgrade URL carries `bind` promises to talk about one
 * sandbox only, and whoever serves it (the daemon, a gateway) holds it to that with the pure
 * functions here. A gateway can then pass such a connection's bytes through to the one daemon
 * holding its sandbox without reading them.
 */
import { ErrorCodes } from "./errors.js";
import type { MethodName, ParamsOf } from "./methods.js";

/** The params of `M` that could name a sandbox; null for a method about no one existing sandbox. */
type SandboxParamOf<M extends MethodName> = Extract<"sandbox" | "id", keyof ParamsOf<M>> | null;

/**
 * The param that names the sandbox each method is about, or null for a method about no one
 * existing sandbox. Typed over every method (and only over params the method has), so a new
 * method does not compile until someone decides what a bound connection may do with it.
 */
export const SANDBOX_PARAM: { readonly [M in MethodName]: SandboxParamOf<M> } = {
  "sandbox.create": null,
  "sandbox.connect": "id",
  "sandbox.list": null,
  "sandbox.kill": "id",
  "sandbox.extendTimeout": "id",
  "sandbox.usage": "id",
  "sandbox.setAllowNet": "id",
  "sandbox.egressLog": "id",
  "sandbox.watchNetwork": "id",
  "sandbox.snapshot": "id",
  "process.spawn": "sandbox",
  "process.kill": "sandbox",
  "process.resize": "sandbox",
  "process.ports": "sandbox",
  "process.list": "sandbox",
  "process.attach": "sandbox",
  "net.exposeHttp": "sandbox",
  "net.connect": "sandbox",
  "repl.start": "sandbox",
  "repl.eval": "sandbox",
  "repl.call": "sandbox",
  "repl.close": "sandbox",
  "fs.readFile": "sandbox",
  "fs.writeFile": "sandbox",
  "fs.stat": "sandbox",
  "fs.lstat": "sandbox",
  "fs.readDir": "sandbox",
  "fs.mkdir": "sandbox",
  "fs.remove": "sandbox",
  "fs.rename": "sandbox",
  "fs.copyFile": "sandbox",
  "fs.chmod": "sandbox",
  "fs.symlink": "sandbox",
  "fs.readLink": "sandbox",
  "fs.realPath": "sandbox",
  "fs.makeTempDir": "sandbox",
  "fs.makeTempFile": "sandbox",
  "fs.link": "sandbox",
  "fs.truncate": "sandbox",
  "fs.umask": "sandbox",
  "fs.utime": "sandbox",
  "fs.chown": "sandbox",
  "fs.open": "sandbox",
  "fs.fileRead": "sandbox",
  "fs.fileWrite": "sandbox",
  "fs.fileSeek": "sandbox",
  "fs.fileStat": "sandbox",
  "fs.fileTruncate": "sandbox",
  "fs.fileSync": "sandbox",
  "fs.fileUtime": "sandbox",
  "fs.fileLock": "sandbox",
  "fs.fileUnlock": "sandbox",
  "fs.fileClose": "sandbox",
  "fs.upload": "sandbox",
  "fs.download": "sandbox",
  "env.get": "sandbox",
  "env.set": "sandbox",
  "env.delete": "sandbox",
  "env.toObject": "sandbox",
  "daemon.info": null,
  "daemon.drain": null,
  "volume.create": null,
  "volume.get": null,
  "volume.list": null,
  "volume.delete": null,
  "volume.resize": null,
  "volume.snapshot": null,
  "snapshot.get": null,
  "snapshot.list": null,
  "snapshot.delete": null,
  "image.build": null,
  "rpc.discover": null,
};

/**
 * What a connection's `bind` promised, and how far it has come:
 * - `none`: no `bind`; any call, as ever.
 * - `new`: `bind=new`; only `sandbox.create` (one at a time) and `rpc.discover` until a create succeeds;
 *   `creating` while one runs.
 * - `sandbox`: bound to sandbox `id`, named in the URL (`via: "id"`) or made on it (`via: "new"`).
 */
export type Binding =
  | { readonly kind: "none" }
  | { readonly kind: "new"; readonly creating: boolean }
  | { readonly kind: "sandbox"; readonly id: string; readonly via: "id" | "new" };

/** The error code a call refused by its connection's binding is answered with. */
export const BIND_ERROR_CODE = ErrorCodes.Forbidden;

/**
 * A sandbox id as daemons make them: "sbx_", then on a daemon with an id prefix the prefix
 * (1 to 16 of [a-z0-9]) and "_", then at least 20 alphanumeric characters; at most 128 in all.
 */
export const SANDBOX_ID_PATTERN = "^sbx_(?:[a-z0-9]{1,16}_)?[A-Za-z0-9]{20,}$";
const SANDBOX_ID = new RegExp(SANDBOX_ID_PATTERN);
/** The longest sandbox id `bind` accepts. */
export const SANDBOX_ID_MAX_LENGTH = 128;
const MAX_ID = SANDBOX_ID_MAX_LENGTH;

/** Whether `value` is a sandbox id as daemons make them (see {@link SANDBOX_ID_PATTERN}): what `bind` accepts. */
export function isSandboxId(value: string): boolean {
  return value.length <= MAX_ID && SANDBOX_ID.test(value);
}

/**
 * The WebSocket close code a gateway closes a bound connection with when the host of its sandbox
 * is lost, with a reason starting "host lost: " (after a `sandbox.exit` notification saying so).
 */
export const HOST_LOST_CLOSE = 4001;

/**
 * Reads `bind` from an upgrade request's query: the request target as the server got it (`/?bind=x`,
 * or an absolute URL), or its parsed query. Any value but `new` or a sandbox id, or `bind` given more
 * than once, is a problem: refuse the upgrade with HTTP 400 and this message.
 *
 * @example parseBind("/?bind=new")                          // { kind: "new", creating: false }
 * @example parseBind("/?bind=sbx_n1_x6Gm2K0cZ4bQ9pLrT8vW1yEd") // { kind: "sandbox", id: "sbx_n1_...", via: "id" }
 * @example parseBind("/")                                   // { kind: "none" }
 * @example parseBind("/?bind=all")                          // { problem: "bind=all: ..." }
 */
export function parseBind(query: string | URLSearchParams): Binding | { readonly problem: string } {
  const params = typeof query === "string" ? new URLSearchParams(queryOf(query)) : query;
  const values = params.getAll("bind");
  if (values.length === 0) return { kind: "none" };
  if (values.length > 1) return { problem: `bind is given ${values.length} times in the URL: give it once, as a sandbox id or "new"` };
  const value = values[0]!;
  if (value === "new") return { kind: "new", creating: false };
  if (isSandboxId(value)) return { kind: "sandbox", id: value, via: "id" };
  const shown = JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
  return { problem: `bind=${shown} in the URL: must be a sandbox id (sbx_ and at least 20 letters and digits, at most ${MAX_ID} characters) or "new"` };
}

/** The query of a request target: what follows its first "?", up to any "#". */
function queryOf(target: string): string {
  const q = target.indexOf("?");
  if (q === -1) return "";
  const hash = target.indexOf("#", q);
  return target.slice(q + 1, hash === -1 ? undefined : hash);
}

function how(b: { id: string; via: "id" | "new" }): string {
  return b.via === "new" ? "it made it, with bind=new in its URL" : `bind=${b.id} in its URL`;
}

/**
 * Why `binding` refuses a call of `method` with `params` (already checked against the method's
 * schema), or null when the call may run. Answer a refused call with {@link BIND_ERROR_CODE} and
 * this message, before the call does anything.
 *
 * @example
 * const b = { kind: "sandbox", id: "sbx_x6Gm2K0cZ4bQ9pLrT8vW1yEd", via: "id" } as const;
 * bindingProblem(b, "fs.stat", { sandbox: b.id, path: "." });  // null
 * bindingProblem(b, "sandbox.list", {});                      // "this connection is bound to sandbox sbx_x6Gm... : sandbox.list is ..."
 */
export function bindingProblem(binding: Binding, method: MethodName, params: Readonly<Record<string, unknown>>): string | null {
  if (binding.kind === "none" || method === "rpc.discover") return null;
  if (binding.kind === "new") {
    const head = "this connection has bind=new in its URL";
    if (binding.creating) {
      return method === "sandbox.create"
        ? `${head} and its sandbox.create is still running: it makes one sandbox; make others on a connection without bind (or another with bind=new)`
        : `${head} and its sandbox.create is still running: wait for its answer (the connection is then bound to the new sandbox) before calling ${method}, or call it on a connection without bind`;
    }
    if (method === "sandbox.create") return null;
    return `${head}: it accepts only sandbox.create (and rpc.discover) until it has made its sandbox; call ${method} after that create, or on a connection without bind`;
  }
  const head = `this connection is bound to sandbox ${binding.id} (${how(binding)})`;
  const field = SANDBOX_PARAM[method];
  if (method === "sandbox.create") return `${head}: it makes no other sandbox; call sandbox.create on a connection without bind (or with bind=new)`;
  if (field === null) return `${head}: ${method} is not about that one sandbox; call it on a connection without bind`;
  const named = params[field];
  if (named === binding.id) return null;
  const shown = typeof named === "string" ? named.slice(0, MAX_ID) : "no sandbox";
  return `${head}: ${method} names ${shown}; open a connection without bind for other sandboxes`;
}

/** The binding once a call it accepted is under way: a `sandbox.create` on `bind=new` now runs. */
export function bindingOnCall(binding: Binding, method: MethodName): Binding {
  return binding.kind === "new" && method === "sandbox.create" ? { kind: "new", creating: true } : binding;
}

/**
 * The binding once the `sandbox.create` that {@link bindingOnCall} saw has its answer: bound to
 * the new sandbox `id`, or (null: the create failed) free to try again.
 */
export function bindingAfterCreate(binding: Binding, id: string | null): Binding {
  if (binding.kind !== "new") return binding;
  return id === null ? { kind: "new", creating: false } : { kind: "sandbox", id, via: "new" };
}
