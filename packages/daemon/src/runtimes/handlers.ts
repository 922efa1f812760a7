/**
 * The daemon's repl.* methods (a REPL is a driver process started through the supervisor with a
 * private pipe pair, owned by the sandbox, so by its token, and ended with it) and net.exposeHttp.
 */
import type { ParamsOf, ResultOf } from "@sbx/protocol";
import { DaemonError, invalid } from "../util/errors.js";
import { defaultEnv, withEgressOptions } from "../sandbox/environment.js";
import { execSizeProblem } from "../sandbox/exec-size.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { SandboxDuplex } from "../streams/sandbox-duplex.js";
import type { CallContext } from "../server/connection.js";
import { DENO_PATH, DENO_REPL_DRIVER, PYTHON_REPL_DRIVER } from "./files.js";
import { driverCommand, MAX_REPLS, Repl, timeoutMs } from "./repl.js";

type Inside = (sb: Sandbox, method: "process.spawn", params: Record<string, unknown>) => Promise<{ pid: number }>;

export function runtimeHandlers(sandboxOf: (ctx: CallContext, id: string) => Sandbox, inside: Inside, hasDeno: () => boolean, expose: () => { bind: string; host: string }) {
  return {
    "repl.start": async (p: ParamsOf<"repl.start">, ctx: CallContext): Promise<ResultOf<"repl.start">> => {
      const sb = sandboxOf(ctx, p.sandbox);
      if (sb.repls.size >= MAX_REPLS) throw new DaemonError("ResourceLimit", `sandbox ${sb.id} already runs ${MAX_REPLS} REPLs; close one first`);
      const { cmd, args } = driverCommand(p.language, { deno: hasDeno() ? DENO_PATH : null, denoDriver: DENO_REPL_DRIVER, pythonDriver: PYTHON_REPL_DRIVER }, p.args ?? []);
      const env = p.clearEnv ? { ...(p.env ?? {}) } : withEgressOptions({ ...defaultEnv(sb), ...(p.env ?? {}) });
      const tooBig = execSizeProblem([cmd, ...args], env);
      if (tooBig) throw invalid(tooBig.field, tooBig.message);
      // Its control pipe's output takes a window from the sandbox's stream budget: refused here, not later.
      sb.link.streams.check(1);
      const pipe = new SandboxDuplex(sb.link);
      const repl = new Repl(p.language, pipe, () => {
        if (repl.pid && !sb.stopped) sb.link.call("process.kill", { pid: repl.pid, signal: "SIGKILL" }).catch(() => {});
      });
      const ready = repl.whenReady();
      ready.catch(() => {});
      let pid: number;
      try {
        ({ pid } = await inside(sb, "process.spawn", {
          cmd,
          args,
          ...(p.cwd ? { cwd: p.cwd } : {}),
          env,
          stdin: null,
          stdout: ctx.streams.stdout ?? null,
          stderr: ctx.streams.stderr ?? null,
          ctlIn: pipe.input,
          ctlOut: pipe.output,
        }));
      } catch (err) {
        repl.close("not started");
        throw err;
      }
      repl.pid = pid;
      sb.processes.track(pid, ctx.conn);
      sb.repls.add(repl);
      await ready;
      return { pid };
    },
    "net.exposeHttp": async (p: ParamsOf<"net.exposeHttp">, ctx: CallContext): Promise<ResultOf<"net.exposeHttp">> => {
      const sb = sandboxOf(ctx, p.sandbox);
      const exposure = await sb.exposures.add(sb, p.port, { public: p.public === true, ...expose() });
      return { url: exposure.url };
    },
    "repl.eval": (p: ParamsOf<"repl.eval">, ctx: CallContext) => sandboxOf(ctx, p.sandbox).repls.get(p.pid).request({ op: "eval", code: p.code }, timeoutMs(p.timeout)),
    "repl.call": (p: ParamsOf<"repl.call">, ctx: CallContext) => sandboxOf(ctx, p.sandbox).repls.get(p.pid).request({ op: "call", fn: p.fn, args: p.args }, timeoutMs(p.timeout)),
    "repl.close": (p: ParamsOf<"repl.close">, ctx: CallContext): null => {
      sandboxOf(ctx, p.sandbox).repls.get(p.pid).close();
      return null;
    },
  };
}
