import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorCodes } from "@sbx/protocol";
import { RpcError, Sandbox } from "@sbx/client";
import { idPrefixOf } from "../../src/fleet/host-state.js";
import { CLI, startDaemon } from "../helpers/daemon.js";
import { useDaemon } from "../helpers/fixtures.js";
import { RawClient } from "../helpers/raw.js";
import { killAtEnd } from "../helpers/kill-at-end.js";

const execFileP = promisify(execFile);
const OPERATOR = `operator-${randomBytes(18).toString("base64url")}`;
const TENANT = `tenant-${randomBytes(18).toString("base64url")}`;
const dir = mkdtempSync(join(tmpdir(), "sbx-fleet-host-"));
const tenant = () => ({ url: daemon.url, token: TENANT });

/** Runs `sbx daemon SUB ...` for the test daemon's state dir; resolves with its exit code and stdout. */
async function sbxDaemon(sub: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, "daemon", sub, "--state-dir", daemon.stateDir, ...args], { env: { ...process.env, SBX_TOKEN: OPERATOR, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err: any) {
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** sbx_sandbox_create_errors_total{code} from the daemon's /metrics. */
async function createErrors(code: string): Promise<number> {
  const url = /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(daemon.logs())![1]!;
  const line = (await (await fetch(url)).text()).split("\n").find((l) => l.startsWith(`sbx_sandbox_create_errors_total{code="${code}"} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

async function operatorCall(method: string, params: unknown = {}, token = OPERATOR): Promise<any> {
  const raw = await RawClient.open(daemon.url, token);
  try {
    return await raw.call(method, params);
  } finally {
    raw.close();
  }
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));
const daemon = useDaemon(() => {
  writeFileSync(join(dir, "tokens"), `# tenants of this fleet\n\n${TENANT}\n`);
  return { env: { SBX_TOKEN: OPERATOR }, config: { idPrefix: "n1", maxSandboxes: 3, tokensFile: join(dir, "tokens") }, args: ["--warm-pool", "1", "--metrics", "127.0.0.1:0"] };
});

describe("id prefix", () => {
  it("puts the configured prefix in every id, warm-pool sandboxes included (a tenant from tokensFile creates them)", async () => {
    // The pool's sandbox is recorded (by id) in the state dir before anyone asks for it.
    const records = join(daemon.stateDir, "sandboxes");
    for (let i = 0; i < 200 && !(existsSync(records) && readdirSync(records).length > 0); i++) await new Promise((r) => setTimeout(r, 50));
    const pooled = readdirSync(records).map((f) => f.replace(/\.json$/, ""));
    expect(pooled).toEqual([expect.stringMatching(/^sbx_n1_[A-Za-z0-9]{24}$/)]);
    // (Whether a create gets that one depends on the pool having finished warming it: not asserted.)
    await using a = killAtEnd(await Sandbox.create(tenant()));
    await using b = killAtEnd(await Sandbox.create(tenant()));
    for (const sb of [a, b]) expect(sb.id).toMatch(/^sbx_n1_[A-Za-z0-9]{24}$/);
  });

  it("keeps a short lower-case name and hashes a node name into ten url-safe characters", () => {
    expect(idPrefixOf("n1")).toBe("n1");
    const hashed = idPrefixOf("ip-10-0-1-23.ec2.internal");
    expect(hashed).toMatch(/^[a-z2-7]{10}$/);
    expect(idPrefixOf("ip-10-0-1-23.ec2.internal")).toBe(hashed);
    expect(idPrefixOf("ip-10-0-1-24.ec2.internal")).not.toBe(hashed);
    expect(() => idPrefixOf("a b")).toThrow(/idPrefix 'a b': must be a host name/);
  });

  it("a daemon refuses a bad idPrefix or a tokens file with a short token, naming the key", async () => {
    const bad = await startDaemon({ config: { idPrefix: "no/slashes" } }).catch((e: Error) => e);
    expect(String(bad)).toMatch(/idPrefix 'no\/slashes': must be a host name/);
    writeFileSync(join(dir, "short"), "tooshort\n");
    const short = await startDaemon({ config: { tokensFile: join(dir, "short") } }).catch((e: Error) => e);
    expect(String(short)).toMatch(/config\.tokensFile: .*short: token 1 is shorter than 16 characters/);
  });
});

describe("daemon.info", () => {
  it("reports the prefix, the live sandboxes and their caps against the host", async () => {
    const before = (await operatorCall("daemon.info")).result;
    expect(before).toMatchObject({ idPrefix: "n1", draining: false, mode: process.getuid?.() === 0 ? "root" : "rootless", capacity: { sandboxes: { live: 0, max: 3 } } });
    await using sb = killAtEnd(await Sandbox.create({ ...tenant(), memory: "256MiB", disk: "64MiB", cpus: 0.5 }));
    const { capacity } = (await operatorCall("daemon.info")).result;
    expect(capacity.sandboxes.live).toBe(1);
    expect(capacity.memory.committedBytes).toBe(256 << 20);
    expect(capacity.disk.committedBytes).toBe(64 << 20);
    expect(capacity.cpus.committed).toBe(0.5);
    expect(capacity.memory.availableBytes).toBeGreaterThan(0);
    expect(capacity.memory.availableBytes).toBeLessThanOrEqual(capacity.memory.totalBytes);
    expect(capacity.disk.freeBytes).toBeLessThanOrEqual(capacity.disk.totalBytes);
    expect(sb.id).toMatch(/^sbx_n1_/);
  });

  it("answers only the operator token: a tenant gets Forbidden, for info and drain alike", async () => {
    for (const method of ["daemon.info", "daemon.drain"]) {
      const res = await operatorCall(method, {}, TENANT);
      expect(res.error.code).toBe(ErrorCodes.Forbidden);
      expect(res.error.message).toBe(`${method} answers only the daemon's operator token (its primary token: SBX_TOKEN or the token file), not a tenant's`);
    }
    expect((await operatorCall("daemon.info")).result.draining).toBe(false);
  });

  it("validates drain's params like every method", async () => {
    const res = await operatorCall("daemon.drain", { draining: "yes" });
    expect(res.error).toMatchObject({ code: ErrorCodes.InvalidParams, message: "params.draining: expected boolean" });
  });
});

describe("maxSandboxes", () => {
  it("refuses a create beyond the cap, naming it (counted in /metrics), and accepts again once one ends", async () => {
    const held = await Promise.all([0, 1, 2].map(() => Sandbox.create(tenant())));
    const counted = await createErrors("ResourceLimit");
    const err = await Sandbox.create(tenant()).catch((e: unknown) => e);
    expect(await createErrors("ResourceLimit")).toBe(counted + 1);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).rpcCode).toBe(ErrorCodes.ResourceLimit);
    expect((err as Error).message).toMatch(/^this daemon already runs 3 sandboxes \(0 more starting\), the most it allows \(maxSandboxes 3\)$/);
    await held[0]!.kill();
    await using again = killAtEnd(await Sandbox.create(tenant()));
    expect(again.id).toMatch(/^sbx_n1_/);
    for (const sb of held.slice(1)) await sb.kill();
  });
});

describe("drain", () => {
  it("refuses new sandboxes while running ones go on (each refusal counted in /metrics); ready says so; --undo accepts them again", async () => {
    await using running = killAtEnd(await Sandbox.create({ ...tenant(), timeout: "5m" }));
    expect(await sbxDaemon("ready")).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ready: 1 of at most 3 sandboxes, ids sbx_n1_\.\.\.\n$/) });

    expect(await sbxDaemon("drain")).toMatchObject({ code: 0, stdout: "draining: 1 sandboxes running\n" });
    const counted = await createErrors("Unavailable");
    const err = await Sandbox.create(tenant()).catch((e: unknown) => e);
    expect(await createErrors("Unavailable")).toBe(counted + 1);
    expect((err as RpcError).rpcCode).toBe(ErrorCodes.Unavailable);
    expect((err as Error).message).toBe("this daemon is draining (sbx daemon drain): it starts no new sandboxes while its running ones finish; create the sandbox on another host");
    expect((await running.sh`echo still here`.text()).trim()).toBe("still here");
    expect(await sbxDaemon("ready")).toMatchObject({ code: 1, stdout: "not ready: draining (1 sandboxes running)\n" });
    expect(daemon.logs()).toMatch(/draining: new sandboxes are refused; 1 running ones go on until they end/);

    expect(await sbxDaemon("drain", ["--undo"])).toMatchObject({ code: 0, stdout: "not draining: 1 sandboxes running\n" });
    await using after = killAtEnd(await Sandbox.create(tenant()));
    expect(await sbxDaemon("ready")).toMatchObject({ code: 0 });
    expect(after.id).toMatch(/^sbx_n1_/);
  });

  it("drain --wait returns once the last sandbox timed out, and fails if one outlives the wait", async () => {
    const short = await Sandbox.create({ ...tenant(), timeout: "3s" });
    const started = Date.now();
    const drained = await sbxDaemon("drain", ["--wait", "30s"]);
    expect(drained).toMatchObject({ code: 0, stdout: "draining: 1 sandboxes running\ndrained: no sandboxes left\n" });
    expect(Date.now() - started).toBeGreaterThan(1500);
    await short.close();

    await sbxDaemon("drain", ["--undo"]);
    await using long = killAtEnd(await Sandbox.create({ ...tenant(), timeout: "5m" }));
    expect(await sbxDaemon("drain", ["--wait", "1s"])).toMatchObject({ code: 1, stdout: "draining: 1 sandboxes running\n1 sandboxes still running after 1s\n" });
    await sbxDaemon("drain", ["--undo"]);
    expect(long.id).toMatch(/^sbx_n1_/);
  });

  it("ready and drain fail clearly without a daemon or with a tenant's token", async () => {
    expect(await sbxDaemon("ready", ["--url", "ws://127.0.0.1:1"])).toMatchObject({ code: 1, stdout: expect.stringMatching(/^not ready: cannot reach the daemon at ws:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/) });
    expect(await sbxDaemon("ready", [], { SBX_TOKEN: TENANT })).toMatchObject({ code: 1, stdout: expect.stringMatching(/^not ready: daemon\.info answers only the daemon's operator token/) });
  });
});
