import { JSONRPCErrorException, JSONRPCServer } from "json-rpc-2.0";
import { buildOpenRpc, type MethodName, type ParamsOf, type ResultOf } from "@sbx/protocol";
import { TRUST_ENV } from "../egress/trust.js";
import { SupervisorError } from "../sandbox/instance.js";
import type { SandboxManager } from "../sandbox/manager.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { DaemonError, invalid } from "../util/errors.js";
import { execSizeProblem } from "../sandbox/exec-size.js";
import type { Logger } from "../util/log.js";
import type { CallContext } from "./connection.js";
import type { HostState } from "../fleet/host-state.js";

/** The environment every spawn starts from, below the sandbox's and the call's own. */
export const BASE_ENV: Readonly<Record<string, string>> = {
  HOME: "/home/user",
  USER: "user",
  LOGNAME: "user",
  SHELL: "/bin/bash",
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C.UTF-8",
  // The way out: the supervisor's bridge to the daemon's egress proxy. Programs that ignore these get no network at all.
  ...Object.fromEntries(
    ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"].flatMap((k) => [
      [k, "http://127.0.0.1:3128"],
      [k.toLowerCase(), "http://127.0.0.1:3128"],
    ]),
  ),
  NO_PROXY: "localhost,127.0.0.1,::1",
  no_proxy: "localhost,127.0.0.1,::1",
  // Node's fetch and http(s) ignore the variables above; this preload routes them through the proxy.
  NODE_OPTIONS: "--require /.sbx/node-proxy.cjs",
  // TLS clients trust the daemon's CA, which signs what the proxy shows for secret hosts (Node's variable: see SECRETS_TRUST_ENV).
  ...TRUST_ENV,
};

type Handler<M extends MethodName> = (p: ParamsOf<M>, ctx: CallContext) => Promise<ResultOf<M>> | ResultOf<M>;

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

/** What every spawn starts from unless it clears the environment: the daemon's base, the sandbox's own, then env.set. */
function defaultEnv(sb: Sandbox): Record<string, string> {
  return { ...BASE_ENV, ...sb.baseEnv, ...Object.fromEntries(sb.env) };
}

function withoutSandbox<T extends { sandbox: string }>(p: T): Omit<T, "sandbox"> {
  const { sandbox: _, ...rest } = p;
  return rest;
}

/** The daemon's JSON-RPC methods, each one checked against the protocol before it runs. */
export function createRpcServer(manager: SandboxManager, host: HostState, log: Logger): JSONRPCServer<CallContext> {
  const server = new JSONRPCServer<CallContext>({
    errorListener: (message, data) => {
      // Protocol errors (not found, bad params, ENOENT...) are answers, not faults. json-rpc-2.0 resets
      // the prototype of its exception class, so subclasses are recognised by the base class only.
      if (!(data instanceof JSONRPCErrorException)) log.error(`${message}: ${(data as Error)?.stack ?? data}`);
    },
  });
  const openrpc = buildOpenRpc();
  const sandboxOf = (ctx: CallContext, id: string) => manager.get(ctx.conn.owner, id);

  const handlers: { [M in MethodName]: Handler<M> } = {
    "sandbox.create": async (p, ctx) => {
      const { sandbox, warnings } = await host.admit(() => manager.create(ctx.conn, p));
      return { ...sandbox.info(), ...(warnings.length ? { warnings } : {}) };
    },
    "sandbox.connect": (p, ctx) => manager.connect(ctx.conn, p.id).info(),
    "sandbox.list": (p, ctx) => manager.list(ctx.conn.owner, p.labels),
    "sandbox.kill": (p, ctx) => (manager.kill(ctx.conn, p.id), null),
    "sandbox.usage": (p, ctx) => manager.usage(ctx.conn, p.id),
    "sandbox.setAllowNet": (p, ctx) => (manager.setAllowNet(ctx.conn, p.id, p.allowNet), null),
    "sandbox.egressLog": (p, ctx) => manager.egressLog(ctx.conn, p.id, p.limit),
    "sandbox.watchNetwork": (p, ctx) => (manager.watchNetwork(ctx.conn, p.id, p.enabled), null),
    "sandbox.extendTimeout": (p, ctx) => ({ expiresAt: manager.extendTimeout(ctx.conn, p.id, p.duration).toISOString() }),
    "process.spawn": async (p, ctx) => {
      const sb = sandboxOf(ctx, p.sandbox);
      const env = p.clearEnv ? { ...(p.env ?? {}) } : { ...defaultEnv(sb), ...(p.env ?? {}) };
      const tooBig = execSizeProblem([p.cmd, ...(p.args ?? [])], env);
      if (tooBig) throw invalid(tooBig.field, tooBig.message);
      const result = await inside(sb, "process.spawn", {
        cmd: p.cmd,
        ...(p.args ? { args: p.args } : {}),
        ...(p.cwd ? { cwd: p.cwd } : {}),
        env,
        stdin: ctx.streams.stdin ?? null,
        stdout: ctx.streams.stdout ?? null,
        stderr: ctx.streams.stderr ?? null,
      });
      manager.trackProcess(sb, result.pid, ctx.conn);
      return result;
    },
    "process.kill": async (p, ctx) => {
      const sb = sandboxOf(ctx, p.sandbox);
      if (p.signal === "SIGKILL" && sb.sigkilled.size < 4096) sb.sigkilled.add(p.pid);
      return inside(sb, "process.kill", withoutSandbox(p));
    },
    "fs.readFile": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.readFile", { ...withoutSandbox(p), stream: ctx.streams.stream }),
    "fs.writeFile": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.writeFile", { ...withoutSandbox(p), stream: ctx.streams.stream }),
    "fs.upload": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.upload", { ...withoutSandbox(p), stream: ctx.streams.stream }),
    "fs.download": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.download", { ...withoutSandbox(p), stream: ctx.streams.stream }),
    "fs.stat": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.stat", withoutSandbox(p)),
    "fs.lstat": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.lstat", withoutSandbox(p)),
    "fs.readDir": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.readDir", withoutSandbox(p)),
    "fs.mkdir": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.mkdir", withoutSandbox(p)),
    "fs.remove": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.remove", withoutSandbox(p)),
    "fs.rename": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.rename", withoutSandbox(p)),
    "fs.copyFile": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.copyFile", withoutSandbox(p)),
    "fs.chmod": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.chmod", withoutSandbox(p)),
    "fs.symlink": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.symlink", withoutSandbox(p)),
    "fs.readLink": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.readLink", withoutSandbox(p)),
    "fs.realPath": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.realPath", withoutSandbox(p)),
    "fs.makeTempDir": (p, ctx) => inside(sandboxOf(ctx, p.sandbox), "fs.makeTempDir", withoutSandbox(p)),
    "env.get": (p, ctx) => sandboxOf(ctx, p.sandbox).env.get(p.name) ?? null,
    "env.set": (p, ctx) => {
      const sb = sandboxOf(ctx, p.sandbox);
      // Refused here rather than at the next spawn: every later process would carry it.
      const tooBig = execSizeProblem([], { ...defaultEnv(sb), [p.name]: p.value });
      if (tooBig) throw invalid("value", `${p.name}: ${tooBig.message}`);
      sb.env.set(p.name, p.value);
      return null;
    },
    "env.delete": (p, ctx) => (sandboxOf(ctx, p.sandbox).env.delete(p.name), null),
    "env.toObject": (p, ctx) => Object.fromEntries(sandboxOf(ctx, p.sandbox).env),
    "daemon.info": (_p, ctx) => host.info(ctx.conn.owner),
    "daemon.drain": (p, ctx) => host.drain(ctx.conn.owner, p.draining ?? true),
    "rpc.discover": () => openrpc,
  };

  for (const [name, handler] of Object.entries(handlers)) {
    server.addMethod(name, (params, ctx) => (handler as Handler<MethodName>)(params as never, ctx));
  }
  return server;
}
