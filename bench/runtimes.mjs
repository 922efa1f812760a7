#!/usr/bin/env node
// Issue 14's targets, each beside its baseline measured in the same run (interleaved):
//   R1  deno.eval("1+1") on a warm REPL            target <= 5 ms (beside spawn("true") in the same sandbox)
//   R2  a cold sandbox.deno.eval("1+1")            target <= 1.5x a bare `deno eval 1` launched in the same sandbox (bwrap)
//   R3  a keep-alive GET through exposeHttp        target <= +0.5 ms over the same GET to the same server on host loopback
// Usage: node bench/runtimes.mjs (after `pnpm build`, as root); QUICK=1 for few samples.
// Prints a markdown table on stdout (and, unless QUICK, writes it to bench/RUNTIMES.md); the log on stderr.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { Agent, get } from "node:http";
import { join } from "node:path";
import { BENCH, QUICK, ROOT, Sandbox, log, now } from "./lib/env.mjs";
import { machine } from "./lib/machine.mjs";
import { startDaemon } from "./lib/daemon.mjs";
import { f1, ratio, stats } from "./lib/stats.mjs";

const N = QUICK ? { warm: 50, cold: 5, http: 100 } : { warm: 500, cold: 30, http: 1000 };
const SERVER = `Deno.serve({ port: PORT, hostname: "127.0.0.1", onListen() {} }, () => new Response("ok"))`;

/** One keep-alive GET with `agent`; resolves with its duration in ms. */
function timedGet(url, agent) {
  return new Promise((resolve, reject) => {
    const t = now();
    get(url, { agent }, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve(now() - t));
    }).on("error", reject);
  });
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error("run as root (the bench's daemon runs in root mode)");
  const d = await startDaemon({ warmPool: 0 });
  const rows = [];
  try {
    const sb = await Sandbox.create(d.opts);
    const quiet = { stdout: "null", stderr: "null" };

    log("R1. warm REPL eval vs spawn(true)");
    const repl = await sb.deno.repl(quiet);
    for (let i = 0; i < 50; i++) await repl.eval("1+1"), await (await sb.spawn("true", quiet)).status;
    const warm = [], spawnTrue = [];
    for (let i = 0; i < N.warm; i++) {
      let t = now();
      await repl.eval("1+1");
      warm.push(now() - t);
      t = now();
      await (await sb.spawn("true", quiet)).status;
      spawnTrue.push(now() - t);
    }
    await repl.close();
    const w = stats(warm), st = stats(spawnTrue);
    rows.push(["R1 deno.eval(\"1+1\") on a warm REPL", `${f1(w.median)} ms (p90 ${f1(w.p90)})`, `spawn("true"): ${f1(st.median)} ms`, "≤ 5 ms", w.median <= 5 ? "yes" : "**no**"]);

    log("R2. cold deno.eval vs bare `deno eval 1` in the sandbox");
    const cold = [], bare = [];
    for (let i = 0; i < N.cold; i++) {
      let t = now();
      await sb.deno.eval("1+1", quiet);
      cold.push(now() - t);
      t = now();
      await (await sb.spawn("deno", { args: ["eval", "1"], ...quiet })).status;
      bare.push(now() - t);
    }
    const c = stats(cold), b = stats(bare);
    rows.push(["R2 cold sandbox.deno.eval(\"1+1\")", `${f1(c.median)} ms (p90 ${f1(c.p90)})`, `deno eval 1 in the sandbox: ${f1(b.median)} ms`, "≤ 1.5×", `${ratio(c.median, b.median)} ${c.median <= 1.5 * b.median ? "yes" : "**no**"}`]);

    log("R3. keep-alive GET through exposeHttp vs direct on host loopback");
    const inside = await sb.deno.run({ code: SERVER.replace("PORT", "8000"), ...quiet });
    if (!(await inside.httpReady)) throw new Error("the server inside did not come up");
    const url = await sb.exposeHttp({ port: 8000 });
    const deno = join(ROOT, "node_modules", ".bin", "deno");
    const direct = spawn(deno, ["eval", SERVER.replace("PORT", "18123")], { stdio: "ignore" });
    try {
      for (let i = 0; i < 100; i++) {
        try {
          await timedGet("http://127.0.0.1:18123/", new Agent());
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const viaAgent = new Agent({ keepAlive: true, maxSockets: 1 }), directAgent = new Agent({ keepAlive: true, maxSockets: 1 });
      for (let i = 0; i < 100; i++) await timedGet(url, viaAgent), await timedGet("http://127.0.0.1:18123/", directAgent);
      const via = [], dir = [];
      for (let i = 0; i < N.http; i++) {
        via.push(await timedGet(url, viaAgent));
        dir.push(await timedGet("http://127.0.0.1:18123/", directAgent));
      }
      const v = stats(via), dd = stats(dir);
      rows.push(["R3 keep-alive GET through exposeHttp", `${f1(v.median)} ms (p90 ${f1(v.p90)})`, `direct on loopback: ${f1(dd.median)} ms`, "≤ +0.5 ms", `+${f1(v.median - dd.median)} ms ${v.median - dd.median <= 0.5 ? "yes" : "**no**"}`]);
    } finally {
      direct.kill("SIGKILL");
    }
    await sb.kill();
  } finally {
    await d.stop();
  }
  const header = ["row", "measured (median)", "baseline, same run", "target", "met"];
  const table = [header, header.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
  console.log(table);
  if (!QUICK) {
    const doc = `# Code runtimes and exposed ports (issue 14)\n\nWritten by \`node bench/runtimes.mjs\` on ${new Date().toISOString()}; machine ${JSON.stringify(machine())}, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")} at the end (other suites ran beside it). Samples: ${N.warm} warm evals, ${N.cold} cold evals, ${N.http} GETs, each interleaved with its baseline.\n\n${table}\n`;
    writeFileSync(join(BENCH, "RUNTIMES.md"), doc);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
