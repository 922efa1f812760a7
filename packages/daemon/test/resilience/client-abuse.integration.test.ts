import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { InvalidOptionError, Sandbox } from "@sbx/client";
import { useDaemon } from "../helpers/fixtures.js";
import { ok, runBash, waitFor } from "../helpers/bash.js";
import { duringAttack, expectUnharmed, rssBytes } from "../helpers/neighbour.js";

/**
 * Resilience items 7 and 8: a client that stops reading, floods calls or sends huge ones is
 * slowed by backpressure and bounded; a call to a sandbox never hangs forever. Each attack runs
 * while a neighbour (another token's sandbox) measures its round trips.
 */

let neighbour: Sandbox;
let victim: Sandbox;
const OTHER_TOKEN = "resilience-other-tenant-token-0123456789";
const daemon = useDaemon({ config: { tokens: [OTHER_TOKEN], stallTimeout: "2s" }, args: ["--warm-pool", "0"] });

beforeAll(async () => {
  neighbour = await Sandbox.create({ url: daemon.url, token: OTHER_TOKEN, timeout: "10m" });
  victim = await Sandbox.create({ ...daemon.opts, timeout: "10m" });
});

afterAll(async () => {
  await neighbour?.kill().catch(() => {});
  await victim?.kill().catch(() => {});
});

/** A raw client of the attacking tenant that never reads what the daemon sends. */
async function deafClient(): Promise<WebSocket> {
  const ws = new WebSocket(daemon.url, { headers: { Authorization: `Bearer ${daemon.token}` }, perMessageDeflate: false });
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  // Stop reading the socket: the daemon's replies pile up on its side of the connection.
  ws.pause();
  return ws;
}

const closed = (ws: WebSocket) => new Promise<void>((r) => (ws.readyState === WebSocket.CLOSED ? r() : ws.once("close", () => r())));

describe("a client that stops reading (resilience item 7)", () => {
  it("28,200 rpc.discover calls on a never-read socket: the daemon stops reading them, its memory stays bounded", async () => {
    const ws = await deafClient();
    const report = await duringAttack(neighbour, daemon.proc.pid!, async () => {
      for (let i = 1; i <= 28_200; i++) ws.send(JSON.stringify({ jsonrpc: "2.0", id: i, method: "rpc.discover", params: {} }));
      await new Promise((r) => setTimeout(r, 3000));
    });
    console.log(`discover flood: ${report.line}`);
    expectUnharmed(report, expect);
    ws.terminate();
    await closed(ws);
  });

  it("240 processes writing to 480 streams of a paused client: the sandbox waits, the daemon does not grow", async () => {
    const ws = await deafClient();
    const rssBefore = rssBytes(daemon.proc.pid!);
    const report = await duringAttack(neighbour, daemon.proc.pid!, async () => {
      for (let i = 0; i < 240; i++) {
        ws.send(JSON.stringify({ jsonrpc: "2.0", id: i + 1, method: "process.spawn", params: { sandbox: victim.id, cmd: "bash", args: ["-c", "cat /dev/zero & cat /dev/zero >&2"], stdin: null, stdout: 2 * i + 1, stderr: 2 * i + 2 } }));
        // Credit every stream generously, as a hostile client would, without reading a byte.
        for (const s of [2 * i + 1, 2 * i + 2]) {
          const credit = Buffer.alloc(9);
          credit[0] = 2;
          credit.writeUInt32BE(s, 1);
          credit.writeUInt32BE(64 << 20, 5);
          ws.send(credit);
        }
      }
      await new Promise((r) => setTimeout(r, 4000));
    });
    console.log(`paused streams: ${report.line}; daemon RSS ${(rssBefore / 2 ** 20).toFixed(0)} → ${(rssBytes(daemon.proc.pid!) / 2 ** 20).toFixed(0)} MiB`);
    expectUnharmed(report, expect);
    ws.terminate();
    await closed(ws);
    // Its streams went with it. The processes it left wait on their pipes, holding the sandbox's
    // stream budget (streamBytesPerSandbox) until they end: a spawn with no output streams ends
    // them, and then the sandbox carries on.
    await (await victim.spawn("pkill", { args: ["-x", "cat"], stdout: "null", stderr: "null" })).status;
    expect(ok(await runBash(victim, "echo alive"), "bash")).toBe("alive\n");
  });

  it("calls of 1.9 MB each, 16 at a time, are slowed to the token's JSON rate and cost neighbours nothing; one past 2 MiB closes that connection (1009)", async () => {
    const ws = new WebSocket(daemon.url, { headers: { Authorization: `Bearer ${daemon.token}` }, perMessageDeflate: false });
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    let answered = 0;
    ws.on("message", () => answered++);
    // 19 arguments of 100 KB: valid JSON-RPC, checked and refused (too big to exec) by the daemon.
    const big = JSON.stringify({ jsonrpc: "2.0", id: 0, method: "process.spawn", params: { sandbox: victim.id, cmd: "true", args: Array(19).fill("x".repeat(100_000)), stdin: null, stdout: null, stderr: null } });
    const started = Date.now();
    const report = await duringAttack(neighbour, daemon.proc.pid!, async () => {
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 16; i++) ws.send(big.replace('"id":0', `"id":${round * 16 + i + 1}`));
        await waitFor("answers", () => answered >= (round + 1) * 16, 30_000);
      }
    });
    // 64 × 1.9 MB at 16 MiB/s (after a 16 MiB burst) take a few seconds: the rate held.
    expect(Date.now() - started).toBeGreaterThan(4000);
    console.log(`big calls: ${report.line}`);
    expectUnharmed(report, expect);
    const tooBig = JSON.stringify({ jsonrpc: "2.0", id: 9999, method: "rpc.discover", params: { pad: "x".repeat(3 << 20) } });
    const code = new Promise<number>((r) => ws.once("close", (c) => r(c)));
    ws.send(tooBig);
    expect(await code).toBe(1009);
  });
});

describe("calls to a sandbox never hang (resilience item 8)", () => {
  it("env.set past what a process can carry is refused naming the value; the sandbox keeps working", async () => {
    const sb = await Sandbox.create({ ...daemon.opts });
    const err = await sb.env.set("HUGE", "x".repeat(1 << 20)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as Error).message).toBe("params.value: HUGE: is 1025 KiB; one variable may be at most 128 KiB (the kernel's limit)");
    // Many variables of 120 KiB: the total is refused at the ninth.
    let refused = -1;
    for (let i = 0; i < 17 && refused < 0; i++) {
      await sb.env.set(`V${i}`, "y".repeat(120 * 1024)).catch((e: Error) => {
        refused = i;
        expect(e.message).toMatch(/^params\.value: V\d+: a process's arguments and environment would come to \d+ KiB; together they may be at most 1024 KiB$/);
      });
    }
    expect(refused).toBe(8);
    expect((await (await sb.spawn("bash", { args: ["-c", "echo ${#V7}"] })).output()).stdoutText).toBe(`${120 * 1024}\n`);
    // The same bounds on a single spawn's own arguments and environment.
    const args = await sb.spawn("true", { args: Array(12).fill("z".repeat(100_000)) }).catch((e: unknown) => e);
    expect((args as Error).message).toMatch(/^params\.env: a process's arguments and environment would come to \d+ KiB; together they may be at most 1024 KiB$/);
    const one = await sb.spawn("true", { args: ["a", "b".repeat(200_000)] }).catch((e: unknown) => e);
    expect((one as Error).message).toBe("params.args[1]: is 196 KiB; one argument may be at most 128 KiB (the kernel's limit)");
    await sb.kill();
  });

  it("a supervisor that stops answering ends its sandbox with that reason instead of hanging the call (stallTimeout)", async () => {
    const sb = await Sandbox.create({ ...daemon.opts });
    // Freeze the sandbox's supervisor from the host, as a wedge would.
    const bwrap = Number(/bwrap pid (\d+)/.exec(daemon.logs().split("\n").find((l) => l.includes(`sandbox ${sb.id} started`))!)![1]);
    // The first process below bwrap that is not bwrap itself: the supervisor.
    const supervisor = descendants(bwrap).find((pid) => readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "bwrap")!;
    execFileSync("kill", ["-STOP", String(supervisor)]);
    const started = Date.now();
    const err = await sb.fs.stat("/home/user").catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect((err as Error).message).toMatch(/stopped/);
    await waitFor("the sandbox to end", () => daemon.logs().includes(`sandbox ${sb.id} stopping (error: the sandbox's supervisor stopped answering (no reply to a liveness check within 2 s while a call waited))`), 5000);
    expect((await Sandbox.list(daemon.opts)).map((s) => s.id)).not.toContain(sb.id);
  });
});

describe("a sandbox whose supervisor dies is reported with a reason (resilience item 6)", () => {
  it("killed from outside: the sandbox ends saying by which signal", async () => {
    const sb = await Sandbox.create({ ...daemon.opts });
    const bwrap = Number(/bwrap pid (\d+)/.exec(daemon.logs().split("\n").find((l) => l.includes(`sandbox ${sb.id} started`))!)![1]);
    const supervisor = descendants(bwrap).find((pid) => readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "bwrap")!;
    execFileSync("kill", ["-KILL", String(supervisor)]);
    await waitFor("the sandbox to end", () => daemon.logs().includes(`sandbox ${sb.id} stopping (error: the sandbox's supervisor was killed by SIGKILL (not by sbx)`), 5000);
  });
});

function descendants(root: number): number[] {
  const out: number[] = [];
  const children = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(" ").filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  for (const queue = [root]; queue.length; ) {
    for (const c of children(queue.shift()!)) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}
