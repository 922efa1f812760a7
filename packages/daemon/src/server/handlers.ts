import { JSONRPCErrorException, JSONRPCServer } from "json-rpc-2.0";
import { buildOpenRpc, METHODS, SUPERVISOR_METHODS, type DaemonMethodName, type MethodName, type ParamsOf, type ResultOf, type SupervisorMethodName } from "@sbx/protocol";
import { SupervisorError } from "../sandbox/supervisor-link.js";
import type { SandboxManager } from "../sandbox/manager.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { DaemonError, invalid } from "../util/errors.js";
import { execSizeProblem } from "../sandbox/exec-size.js";
import { defaultEnv, deleteEnv, setEnv, withEgressOptions } from "../sandbox/environment.js";
import type { Logger } from "../util/log.js";
import type { CallContext } from "./connection.js";
import { runtimeHandlers } from "../runtimes/handlers.js";
import type { HostState } from "../fleet/host-state.js";
import { volumeHandlers } from "../volumes/handlers.js";
import type { ImageBuilder } from "../volumes/build.js";

type Handler<M extends MethodName> = (p: ParamsOf<M>, ctx: CallContext) => Promise<ResultOf<M>> | ResultOf<M>;
/** The calls on a file opened with fs.open. */
type HandleMethod = { [M in SupervisorMethodName]: ParamsOf<M> extends { handle: number } ? M : never }[SupervisorMethodName];

/** What any connection but the one that opened `handle` is told: as if it were never open (nothing revealed). */
const notOpen = (handle: number) => new DaemonError("FileSystem", `EBADF: bad file descriptor, no open file with handle ${handle} on this connection`, { errno: "EBADF" });

/** Forwards a supervisor call, mapping its failures to protocol errors. */
async function inside(sb: Sandbox, method: MethodName, params: Record<string, unknown>): Promise<any> {
  try {
    return await sb.link.call(method, params);
  } catch (err) {
    if (err instanceof SupervisorError) {
      throw new DaemonError(err.code, err.message, err.errno ? { errno: err.errno, ...("path" in params ? { path: params.path } : {}) } : undefined);
    }
    throw err;
  }
}

function withoutSandbox<T extends { sandbox: string }>(p: T): Omit<T, "sandbox"> {
  const { sandbox: _, ...rest } = p;
  return rest;
}

/** The daemon's JSON-RPC methods, each one checked against the protocol before it runs. */
/** `images` is null in rootless mode (no volumes), where image.build refuses clearly. */
export function createRpcServer(manager: SandboxManager, host: HostState, log: Logger, images: ImageBuilder | null = null): JSONRPCServer<CallContext> {
  const server = new JSONRPCServer<CallContext>({
    errorListener: (message, data) => {
      // Protocol errors (not found, bad params, ENOENT...) are answers, not faults. json-rpc-2.0 resets
      // the prototype of its exception class, so subclasses are recognised by the base class only.
      if (!(data instanceof JSONRPCErrorException)) log.error(`${message}: ${(data as Error)?.stack ?? data}`);
    },
  });
  const openrpc = buildOpenRpc();
  /** What a process run with sudo sees of itself, as sudo would set it. */
  const ROOT_ENV = { HOME: "/root", USER: "root", LOGNAME: "root" };
  const sandboxOf = (ctx: CallContext, id: string) => manager.get(ctx.conn.owner, id);

  // What the supervisor carries out needs only forwarding (calls on open files after an ownership check), but for these.
  const special: { [M in SupervisorMethodName]?: Handler<M> } = {
    "process.spawn": async (p, ctx) => {
      const sb = sandboxOf(ctx, p.sandbox);
      const sids = { ...(ctx.streams.stdout ? { stdout: ctx.streams.stdout } : {}), ...(ctx.streams.stderr ? { stderr: ctx.streams.stderr } : {}) };
      const spawn = async () => {
        if (p.sudo && !sb.sudo) throw new DaemonError("Unsupported", "sudo: this sandbox has no root to run as; only a sandbox booted from an image (create it with root) has one");
        const asRoot = p.sudo ? ROOT_ENV : {};
        const env = p.clearEnv ? { ...(p.env ?? {}) } : withEgressOptions({ ...defaultEnv(sb), ...asRoot, ...(p.env ?? {}) });
        const tooBig = execSizeProblem([p.cmd, ...(p.args ?? [])], env);
        if (tooBig) throw invalid(tooBig.field, tooBig.message);
        return inside(sb, "process.spawn", {
          cmd: p.cmd,
          ...(p.args ? { args: p.args } : {}),
          ...(p.cwd ? { cwd: p.cwd } : {}),
          env,
          stdin: ctx.streams.stdin ?? null,
          stdout: ctx.streams.stdout ?? null,
          stderr: ctx.streams.stderr ?? null,
          ...(p.pty ? { pty: p.pty } : {}),
          ...(p.sudo ? { sudo: true } : {}),
        });
      };
      // A spawn that fails, however early, gives back its output taps (and their share of the stream budget).
      const result = await spawn().catch((err) => {
        sb.outputs.drop(Object.values(sids));
        throw err;
      });
      sb.outputs.adopt(result.pid, p.cmd, p.args ?? [], sids);
      sb.processes.track(result.pid, ctx.conn);
      manager.metrics.spawns.inc();
      return result;
    },
    "fs.open": async (p, ctx) => {
      const sb = sandboxOf(ctx, p.sandbox);
      const result = await inside(sb, "fs.open", withoutSandbox(p));
      if (ctx.conn.closed) {
        // Opened for a connection that left meanwhile: nobody may use it.
        sb.link.call("fs.fileClose", { handle: result.handle }).catch(() => {});
        throw new DaemonError("Unavailable", "the connection closed while the file was opened");
      }
      if (!sb.files.opened(result.handle, ctx.conn)) throw new DaemonError("InternalError", `the sandbox answered fs.open with handle ${result.handle}, which is already open`);
      return result;
    },
    "fs.fileClose": async (p, ctx) => {
      const sb = sandboxOf(ctx, p.sandbox);
      if (!sb.files.owns(p.handle, ctx.conn)) throw notOpen(p.handle);
      sb.files.closed(p.handle);
      return inside(sb, "fs.fileClose", withoutSandbox(p));
    },
    "process.kill": async (p, ctx) => {
      const sb = sandboxOf(ctx, p.sandbox);
      if (p.signal === "SIGKILL") sb.processes.killing(p.pid);
      return inside(sb, "process.kill", withoutSandbox(p));
    },
  };
  const forward = <M extends SupervisorMethodName>(m: M): Handler<M> => (p, ctx) => inside(sandboxOf(ctx, p.sandbox), m, { ...withoutSandbox(p), ...ctx.streams });
  /** A call on an open file: only the connection that opened it may make it. */
  const onHandle = <M extends HandleMethod>(m: M): Handler<M> => (p, ctx) => {
    const sb = sandboxOf(ctx, p.sandbox);
    if (!sb.files.owns((p as { handle: number }).handle, ctx.conn)) throw notOpen((p as { handle: number }).handle);
    return inside(sb, m, { ...withoutSandbox(p), ...ctx.streams });
  };
  const isHandleMethod = (m: SupervisorMethodName): m is HandleMethod => "handle" in (METHODS[m].params as { properties: object }).properties;

  const handlers: { [M in DaemonMethodName]: Handler<M> } = {
    "sandbox.create": async (p, ctx) => {
      const { sandbox, warnings } = await host.admit(() => manager.create(ctx.conn, p));
      return { ...sandbox.info(), ...(warnings.length ? { warnings } : {}) };
    },
    "sandbox.connect": (p, ctx) => manager.connect(ctx.conn, p.id).info(),
    "sandbox.list": (p, ctx) => manager.list(ctx.conn.owner, p.labels),
    "sandbox.snapshot": (p, ctx) => manager.snapshot(ctx.conn, p.id, p.slug),
    "sandbox.kill": async (p, ctx) => (await manager.kill(ctx.conn, p.id), null),
    "sandbox.usage": (p, ctx) => manager.usage(ctx.conn, p.id),
    "sandbox.setAllowNet": (p, ctx) => (manager.setAllowNet(ctx.conn, p.id, p.allowNet), null),
    "sandbox.egressLog": (p, ctx) => manager.egressLog(ctx.conn, p.id, p.limit),
    "sandbox.watchNetwork": (p, ctx) => (manager.watchNetwork(ctx.conn, p.id, p.enabled), null),
    "sandbox.extendTimeout": (p, ctx) => ({ expiresAt: manager.extendTimeout(ctx.conn, p.id, p.duration).toISOString() }),
    "process.list": (p, ctx) => ({ processes: sandboxOf(ctx, p.sandbox).outputs.list() }),
    "process.attach": (p, ctx) => {
      const sb = sandboxOf(ctx, p.sandbox);
      const record = sb.outputs.list().find((r) => r.pid === p.pid);
      if (!record) throw new DaemonError("ProcessNotFound", `no process with pid ${p.pid} that this sandbox's clients started (or it ended long ago)`);
      // Ended already: its status comes with the answer (no process.exit will follow); else this connection hears it.
      if (!record.status) sb.processes.reattach(p.pid, ctx.conn);
      return { stdoutFrom: ctx.streams.stdoutFrom ?? null, stderrFrom: ctx.streams.stderrFrom ?? null, ...(record.status ? { status: record.status } : {}) };
    },
    // As Deno's: what a process started now would see, the base environment (PATH, HOME...) included.
    "env.get": (p, ctx) => {
      const env = defaultEnv(sandboxOf(ctx, p.sandbox));
      return Object.hasOwn(env, p.name) ? env[p.name]! : null;
    },
    "env.set": (p, ctx) => {
      const sb = sandboxOf(ctx, p.sandbox);
      // Refused here rather than at the next spawn: every later process would carry it.
      const tooBig = execSizeProblem([], { ...defaultEnv(sb), [p.name]: p.value });
      if (tooBig) throw invalid("value", `${p.name}: ${tooBig.message}`);
      setEnv(sb, p.name, p.value);
      return null;
    },
    "env.delete": (p, ctx) => (deleteEnv(sandboxOf(ctx, p.sandbox), p.name), null),
    "env.toObject": (p, ctx) => defaultEnv(sandboxOf(ctx, p.sandbox)),
    "daemon.info": (_p, ctx) => host.info(ctx.conn.owner),
    "daemon.drain": (p, ctx) => host.drain(ctx.conn.owner, p.draining ?? true),
    "rpc.discover": () => openrpc,
    ...runtimeHandlers(sandboxOf, inside, () => manager.hasDeno, () => manager.expose),
    ...volumeHandlers(manager.volumes, images),
  };

  for (const [name, handler] of Object.entries(handlers)) {
    server.addMethod(name, (params, ctx) => (handler as Handler<MethodName>)(params as never, ctx));
  }
  for (const name of SUPERVISOR_METHODS) {
    const handler = (special[name] ?? (isHandleMethod(name) ? onHandle(name) : forward(name))) as Handler<MethodName>;
    server.addMethod(name, (params, ctx) => handler(params as never, ctx));
  }
  return server;
}
