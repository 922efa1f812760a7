/**
 * Three real daemons behind two gateway replicas, reached with the unchanged SDK: placement,
 * every SDK call through either replica, tenants kept apart, drain, and the gateway's own
 * checks. (Losing a host is in host-lost.integration.test.ts.)
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCodes, FrameOp, STREAM_WINDOW, VOLUME_LIMITS, encodeCredit, encodeFrame } from "@sbx/protocol";
import { AuthError, Client, InvalidOptionError, RpcError, Sandbox, SandboxNotFoundError, type EgressEvent } from "@sbx/client";
import { CLI } from "../../daemon/test/helpers/daemon.js";
import { RawClient } from "../../daemon/test/helpers/raw.js";
import { startFleet, startGateway, token, type TestFleet } from "./helpers/fleet.js";
import { killAtEnd } from "../../daemon/test/helpers/kill-at-end.js";
import { untilFree } from "../../daemon/test/helpers/images.js";

const execFileP = promisify(execFile);
let fleet: TestFleet;
const via = (g: number, tenant = 0) => ({ url: fleet.gateways[g]!.url, token: fleet.tenants[tenant]! });
const prefixOf = (id: string) => /^sbx_(h\d)_/.exec(id)?.[1];
const text = (b: Uint8Array | null | undefined) => new TextDecoder().decode(b ?? new Uint8Array());

async function liveOn(i: number): Promise<number> {
  const raw = await RawClient.open(fleet.daemons[i]!.url, fleet.operator);
  try {
    return (await raw.call("daemon.info")).result.capacity.sandboxes.live;
  } finally {
    raw.close();
  }
}

/** A tenant with a quota, declared on every daemon with its own token file (config tenants). */
const gradedDir = mkdtempSync(join(tmpdir(), "sbx-fleet-graded-"));
const GRADED = token("graded");
const gradedFile = join(gradedDir, "graded.token");

beforeAll(async () => {
  writeFileSync(gradedFile, GRADED + "\n");
  fleet = await startFleet({ daemons: 3, gateways: 2, daemonConfig: { tenants: [{ name: "graded", tokenFile: gradedFile, quotas: { sandboxes: 1 } }] } });
});
afterAll(async () => {
  await fleet?.[Symbol.asyncDispose]();
  rmSync(gradedDir, { recursive: true, force: true });
});

describe("placement", () => {
  it("spreads creates over the hosts, one at a time through alternating replicas and all at once", async () => {
    const one: Sandbox[] = [];
    for (let i = 0; i < 6; i++) one.push(await Sandbox.create({ ...via(i % 2), timeout: "5m" }));
    const count = (list: Sandbox[]) => ["h0", "h1", "h2"].map((h) => list.filter((s) => prefixOf(s.id) === h).length);
    expect(count(one)).toEqual([2, 2, 2]);
    expect(await Promise.all([0, 1, 2].map(liveOn))).toEqual([2, 2, 2]);
    await Promise.all(one.map((s) => s.kill()));

    // Concurrent creates through one replica see each other's choice (creates in flight count).
    const burst = await Promise.all([0, 1, 2, 3, 4, 5].map(() => Sandbox.create({ ...via(0), timeout: "5m" })));
    for (const n of count(burst)) expect(n).toBeGreaterThanOrEqual(1);
    await Promise.all(burst.map((s) => s.kill()));
  });
});

describe("every SDK call through either replica", () => {
  it.each([[0, 1], [1, 0]])("create through replica %i, then spawn with streaming, stdin, fs, upload/download, env, usage, egress, extendTimeout, kill through replica %i", async (a, b) => {
    const created = await Sandbox.create({ ...via(a), timeout: "5m", env: { FROM: "create" }, labels: { suite: "fleet" } });
    const sb = await Sandbox.connect(created.id, via(b));
    try {
      // Output streams while the process runs; stdin goes the other way.
      const p = await sb.spawn("bash", { args: ["-c", 'echo "first $FROM"; read line; echo "got $line"; head -c 3000000 /dev/zero | wc -c'], stdin: "piped" });
      const reader = p.stdout!.getReader();
      expect(text((await reader.read()).value)).toBe("first create\n");
      const writer = p.stdin!.getWriter();
      await writer.write(new TextEncoder().encode("ping\n"));
      await writer.close();
      let rest = "";
      for (let r = await reader.read(); !r.done; r = await reader.read()) rest += text(r.value);
      expect(rest).toBe("got ping\n3000000\n");
      expect(await p.status).toEqual({ success: true, code: 0, signal: null, oom: false });

      // Several windows of credit each way.
      const big = new Uint8Array(5 << 20).map((_, i) => (i * 7) & 255);
      await sb.fs.writeFile("big.bin", big);
      expect(Buffer.from(await sb.fs.readFile("big.bin")).equals(Buffer.from(big))).toBe(true);
      expect((await sb.fs.stat("big.bin")).size).toBe(big.byteLength);
      await sb.fs.writeTextFile("/tmp/t.txt", "through the gateway");
      expect(await sb.fs.readTextFile("/tmp/t.txt")).toBe("through the gateway");

      const local = mkdtempSync(join(tmpdir(), "sbx-gw-tree-"));
      try {
        mkdirSync(join(local, "up", "sub"), { recursive: true });
        writeFileSync(join(local, "up", "a.txt"), "A");
        writeFileSync(join(local, "up", "sub", "b.txt"), "B".repeat(300_000));
        await sb.fs.upload(join(local, "up"), "tree");
        expect((await sb.sh`cat tree/a.txt; wc -c < tree/sub/b.txt`.text()).trim()).toBe("A300000");
        await sb.fs.download("tree", join(local, "down"));
        expect(readFileSync(join(local, "down", "sub", "b.txt"), "utf8")).toBe("B".repeat(300_000));
      } finally {
        rmSync(local, { recursive: true, force: true });
      }

      await sb.env.set("ADDED", "yes");
      expect(await sb.env.get("ADDED")).toBe("yes");
      expect(await sb.env.toObject()).toMatchObject({ FROM: "create", ADDED: "yes" });
      await sb.env.delete("ADDED");
      expect(await sb.env.get("ADDED")).toBeUndefined();

      // Notifications come back to the connection that asked for them.
      const events: EgressEvent[] = [];
      const stop = await sb.onNetwork((e) => events.push(e));
      await sb.sh`curl -s -o /dev/null http://blocked.example.com/ || true`;
      await stop();
      expect(events.some((e) => e.host === "blocked.example.com" && !e.allowed)).toBe(true);
      expect((await sb.egressLog()).some((e) => e.host === "blocked.example.com" && !e.allowed)).toBe(true);

      // As Deno's: the new expiry is now + the duration.
      const asked = Date.now();
      const until = await sb.extendTimeout("10m");
      expect(until.getTime()).toBeGreaterThanOrEqual(asked + 600_000 - 1000);
      expect(until.getTime()).toBeLessThanOrEqual(Date.now() + 600_000 + 1000);
      const usage = await sb.usage();
      expect(usage.status).toBe("running");
      expect(usage.egress.blocked).toBeGreaterThanOrEqual(1);
      expect(usage.cpuSeconds).toBeGreaterThan(0);

      const sleeper = await sb.spawn("sleep", { args: ["30"] });
      await sleeper.kill("SIGKILL");
      expect(await sleeper.status).toMatchObject({ code: 137, signal: "SIGKILL" });
    } catch (err) {
      // A timed sandbox left behind would skew placement in the tests after this one.
      await created.kill();
      throw err;
    } finally {
      await sb.close();
    }
    await created.kill();
    // Final usage is still read through the host named in the id, after the end.
    expect((await Sandbox.usageOf(created.id, via(b))).status).toBe("stopped");
    const gone = await Sandbox.connect(created.id, via(a)).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(SandboxNotFoundError);
  });

  it("list fans out to every host and merges; tenants see only their own sandboxes everywhere", async () => {
    // One after the other: replicas do not coordinate, so only sequential creates are sure to spread over all three.
    const mine: Sandbox[] = [];
    for (const i of [0, 1, 2]) mine.push(await Sandbox.create({ ...via(i % 2), timeout: "5m", labels: { who: "t0" } }));
    const theirs = await Sandbox.create({ ...via(1, 1), timeout: "5m", labels: { who: "t1" } });
    try {
      expect(new Set(mine.map((s) => prefixOf(s.id))).size).toBe(3);
      for (const g of [0, 1]) {
        const listed = await Sandbox.list({ ...via(g), labels: { who: "t0" } });
        expect(listed.map((s) => s.id).sort()).toEqual(mine.map((s) => s.id).sort());
        expect(listed.map((s) => s.createdAt.getTime())).toEqual([...listed.map((s) => s.createdAt.getTime())].sort((a, b) => a - b));
        expect((await Sandbox.list(via(g))).some((s) => s.id === theirs.id)).toBe(false);
        expect((await Sandbox.list(via(g, 1))).map((s) => s.id)).toEqual([theirs.id]);
      }
      // Another tenant's sandbox does not exist for this token, on any host, through any replica.
      for (const g of [0, 1]) {
        const err = await Sandbox.connect(theirs.id, via(g)).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SandboxNotFoundError);
        expect((err as Error).message).toBe(`no running sandbox '${theirs.id}'`);
      }
    } finally {
      await Promise.all([...mine, theirs].map((s) => s.kill()));
    }
  });
});

describe("volumes and snapshots through either replica", () => {
  const hostOf = (id: string) => /^(?:vol|snap)_(h\d)_/.exec(id)?.[1];
  /** The tenant's client straight to daemon `i`, beside the gateway. */
  const direct = (i: number) => new Client({ url: fleet.daemons[i]!.url, token: fleet.tenants[0]! });

  it("live on one host, found by id or slug through either replica; sandboxes naming them are created there", async () => {
    const a = new Client(via(0));
    const b = new Client(via(1));
    const vol = await a.volumes.create({ slug: "fleet-data", capacity: "64MiB" });
    const host = hostOf(vol.id);
    expect(host).toMatch(/^h\d$/);
    try {
      expect((await b.volumes.get(vol.id))?.slug).toBe("fleet-data");
      expect((await b.volumes.get("fleet-data"))?.id).toBe(vol.id);
      expect(await b.volumes.get("no-such-volume")).toBeNull();
      expect(await b.volumes.get("vol_h0_AAAAAAAAAAAAAAAAAAAAAAAA")).toBeNull();
      // A slug names one thing in the fleet: a second create with it is refused wherever placement would put it.
      await expect(b.volumes.create({ slug: "fleet-data", capacity: "64MiB" })).rejects.toThrow(/params\.slug: 'fleet-data' is already the slug of a volume or snapshot of this token/);

      // Mounted by slug through the other replica: the sandbox is made on the volume's host.
      const sb = await Sandbox.create({ ...via(1), volumes: { "/data": "fleet-data" }, timeout: "5m" });
      expect(prefixOf(sb.id)).toBe(host);
      await sb.fs.writeTextFile("/data/hello.txt", "from the fleet");
      // A sandbox's snapshot takes a slug of the fleet's too.
      await expect(sb.snapshot({ slug: "fleet-data" })).rejects.toThrow(/params\.slug: 'fleet-data' is already the slug of a volume or snapshot of this token/);
      await sb.kill();

      // Its snapshot stays on its host; a volume made from the snapshot goes there too.
      const snap = await untilFree(() => a.volumes.snapshot("fleet-data", { slug: "fleet-snap" }));
      expect(hostOf(snap.id)).toBe(host);
      expect((await b.snapshots.get("fleet-snap"))?.id).toBe(snap.id);
      const copy = await b.volumes.create({ slug: "fleet-copy", capacity: "64MiB", from: "fleet-snap" });
      expect(hostOf(copy.id)).toBe(host);
      expect((await a.volumes.resize("fleet-copy", "128MiB")).capacity).toBe(128 * 2 ** 20);
      const reader = await Sandbox.create({ ...via(0), volumes: { "/snap": snap.id, "/copy": "fleet-copy" }, timeout: "5m" });
      expect(prefixOf(reader.id)).toBe(host);
      expect(await reader.fs.readTextFile("/snap/hello.txt")).toBe("from the fleet");
      expect(await reader.fs.readTextFile("/copy/hello.txt")).toBe("from the fleet");
      await reader.kill();

      // Volumes on two hosts cannot be mounted by one sandbox: refused, naming where each is.
      const other = [0, 1, 2].find((i) => `h${i}` !== host)!;
      await direct(other).volumes.create({ slug: "fleet-elsewhere", capacity: "64MiB" });
      const split = await Sandbox.create({ ...via(0), volumes: { "/a": "fleet-data", "/b": "fleet-elsewhere" } }).catch((e: unknown) => e);
      expect(split).toBeInstanceOf(InvalidOptionError);
      expect((split as Error).message).toMatch(/^params\.volumes: a sandbox mounts only what its own host holds, and these are on 2 hosts: 'fleet-data' on \S+, 'fleet-elsewhere' on \S+$/);
      await b.volumes.delete("fleet-elsewhere");
      expect(await direct(other).volumes.get("fleet-elsewhere")).toBeNull();

      await untilFree(() => b.volumes.delete("fleet-copy"));
      await untilFree(() => a.snapshots.delete(snap.id));
      expect(await b.snapshots.get("fleet-snap")).toBeNull();
    } finally {
      await untilFree(() => a.volumes.delete(vol.id)).catch(() => {});
    }
    expect(await a.volumes.get("fleet-data")).toBeNull();
  });

  it("a new volume a host refuses for want of room (here the token's limit there) is made on another", async () => {
    const tenant = { url: fleet.daemons[0]!.url, token: fleet.tenants[1]! };
    const full = new Client(tenant).volumes;
    const filler = [];
    for (let i = 0; i < VOLUME_LIMITS.perToken; i++) filler.push(await full.create({ slug: `fill-${i}`, capacity: "16MiB" }));
    await expect(full.create({ slug: "fill-over", capacity: "16MiB" })).rejects.toThrow(/the most the daemon allows/);
    const volumes = new Client(via(0, 1)).volumes;
    const made = [];
    try {
      // Ties on free disk go in random order: h0 comes first for about a third of these, and refuses.
      for (let i = 0; i < 6; i++) made.push(await volumes.create({ slug: `spill-${i}`, capacity: "16MiB" }));
      expect(made.filter((v) => /^vol_h0_/.test(v.id))).toEqual([]);
    } finally {
      for (const v of [...made, ...filler]) await volumes.delete(v.id);
    }
  });

  it("lists merge every host's, oldest first, paged as one daemon pages; a slug made on two hosts beside the gateway is ambiguous, its ids are not", async () => {
    const made = [];
    for (const i of [2, 0, 1]) made.push(await direct(i).volumes.create({ slug: `fleet-list-${i}`, capacity: "32MiB" }));
    const twin = await direct(0).volumes.create({ slug: "fleet-twin", capacity: "32MiB" });
    const twin2 = await direct(1).volumes.create({ slug: "fleet-twin", capacity: "32MiB" });
    try {
      const c = new Client(via(1));
      const first = await c.volumes.list({ search: "fleet-list-", limit: 2 });
      expect(first.items.map((v) => v.slug)).toEqual(["fleet-list-2", "fleet-list-0"]);
      expect(first.nextCursor).toBe(made[1]!.id);
      const second = (await first.getNextPage())!;
      expect([second.items.map((v) => v.slug), second.nextCursor]).toEqual([["fleet-list-1"], null]);
      const all: string[] = [];
      for await (const v of await c.volumes.list({ search: "fleet-" })) all.push(v.slug);
      expect(all).toEqual(["fleet-list-2", "fleet-list-0", "fleet-list-1", "fleet-twin", "fleet-twin"]);
      await expect(c.volumes.list({ cursor: "vol_h0_AAAAAAAAAAAAAAAAAAAAAAAA" })).rejects.toThrow("params.cursor: 'vol_h0_AAAAAAAAAAAAAAAAAAAAAAAA' is not a cursor of this list (it names no volume of this token)");
      // Another tenant sees none of them, on any host.
      expect((await new Client(via(0, 1)).volumes.list({ search: "fleet-" })).items).toEqual([]);

      await expect(c.volumes.get("fleet-twin")).rejects.toThrow(new RegExp(`^'fleet-twin' is the slug of a volume on each of 2 sbx hosts \\(.*\\): name it by its id$`));
      expect((await c.volumes.get(twin2.id))?.id).toBe(twin2.id);
    } finally {
      for (const [i, v] of [[2, made[0]!], [0, made[1]!], [1, made[2]!], [0, twin], [1, twin2]] as const) await direct(i).volumes.delete(v.id);
    }
  });
});

describe("sbx doctor through a replica", () => {
  it("passes end to end: create, a process, files, the network shut, seccomp, kill and usage, on whichever host placement chose", async () => {
    const { stdout } = await execFileP(process.execPath, [CLI, "doctor", "--url", fleet.gateways[1]!.url, "--token", fleet.tenants[0]!], { timeout: 120_000 });
    expect(stdout).toMatch(/^ok {3}daemon: create a sandbox: sbx_h[012]_[A-Za-z0-9]{24} in /m);
    for (const step of ["process", "files", "no network without allowNet", "seccomp and namespaces", "kill and usage"]) expect(stdout).toMatch(new RegExp(`^ok {3}daemon: ${step}: `, "m"));
  });
});

describe("drain", () => {
  it("a drained daemon gets no new sandboxes or volumes; its running ones stay reachable", async () => {
    const h2 = fleet.daemons[2]!;
    const onH2: Sandbox[] = [];
    for (let i = 0; i < 30 && onH2.length === 0; i++) {
      const sb = await Sandbox.create({ ...via(0), timeout: "5m" });
      if (prefixOf(sb.id) === "h2") onH2.push(sb);
      else await sb.kill();
    }
    expect(onH2.length, "placement never chose h2 in 30 creates").toBe(1);
    const drain = await execFileP(process.execPath, [CLI, "daemon", "drain", "--state-dir", h2.stateDir], { env: { ...process.env, SBX_TOKEN: fleet.operator } });
    expect(drain.stdout).toBe("draining: 1 sandboxes running\n");
    try {
      const created = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => Sandbox.create({ ...via(i % 2), timeout: "5m" })));
      expect(created.filter((s) => prefixOf(s.id) === "h2")).toEqual([]);
      await Promise.all(created.map((s) => s.kill()));
      // Volumes go where disk is free (here one disk for all: ties at random), never to a draining host.
      const volumes = new Client(via(1)).volumes;
      const made = [];
      for (let i = 0; i < 6; i++) made.push(await volumes.create({ slug: `fleet-drain-${i}`, capacity: "16MiB" }));
      expect(made.filter((v) => /^vol_h2_/.test(v.id))).toEqual([]);
      for (const v of made) await volumes.delete(v.id);
      const still = await Sandbox.connect(onH2[0]!.id, via(1));
      expect((await still.sh`echo on the drained host`.text()).trim()).toBe("on the drained host");
      await still.close();
    } finally {
      await execFileP(process.execPath, [CLI, "daemon", "drain", "--undo", "--state-dir", h2.stateDir], { env: { ...process.env, SBX_TOKEN: fleet.operator } });
      await onH2[0]!.kill();
    }
  });
});

describe("the gateway's own door", () => {
  function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.once("open", () => (ws.close(), resolve(101)));
      ws.once("unexpected-response", (_req, res) => (ws.terminate(), resolve(res.statusCode ?? 0)));
      ws.once("error", reject);
    });
  }

  it("authenticates as a daemon does: bearer token, Origin refused; the daemons' operator token is not a client token", async () => {
    const url = fleet.gateways[0]!.url;
    expect(await upgradeStatus(url, {})).toBe(401);
    expect(await upgradeStatus(url, { Authorization: `Bearer ${fleet.tenants[0]}x` })).toBe(401);
    expect(await upgradeStatus(url, { Authorization: `Bearer ${fleet.tenants[0]!.slice(0, -1)}` })).toBe(401);
    expect(await upgradeStatus(url, { Authorization: `Bearer ${fleet.operator}` })).toBe(401);
    expect(await upgradeStatus(url, { Authorization: `Bearer ${fleet.tenants[0]}`, Origin: "https://evil.example" })).toBe(403);
    expect(await upgradeStatus(url, { Authorization: `Bearer ${fleet.tenants[1]}` })).toBe(101);
    const res = await fetch(url.replace("ws://", "http://") + "/readyz");
    expect([res.status, await res.text()]).toEqual([200, "ready\n"]);
  });

  it("answers bad calls as a daemon does, and refuses per-host operator methods", async () => {
    const raw = await RawClient.open(fleet.gateways[1]!.url, fleet.tenants[0]!);
    try {
      expect((await raw.call("fs.stat", { sandbox: "sbx_h0_AAAAAAAAAAAAAAAAAAAAAAAA", path: "a\u0000b" })).error).toMatchObject({ code: ErrorCodes.InvalidParams, message: expect.stringMatching(/^params\.path: .*without NUL bytes/) });
      expect((await raw.call("fs.stat", { sandbox: "sbx_h0_AAAAAAAAAAAAAAAAAAAAAAAA", path: "x" })).error).toEqual({ code: ErrorCodes.SandboxNotFound, message: "no running sandbox 'sbx_h0_AAAAAAAAAAAAAAAAAAAAAAAA'" });
      expect((await raw.call("fs.stat", { sandbox: "sbx_zz_AAAAAAAAAAAAAAAAAAAAAAAA", path: "x" })).error).toEqual({ code: ErrorCodes.SandboxNotFound, message: "no running sandbox 'sbx_zz_AAAAAAAAAAAAAAAAAAAAAAAA'" });
      // A stream id named twice: the first field naming it is the one named, as by the daemon.
      expect((await raw.call("process.spawn", { sandbox: "sbx_h0_AAAAAAAAAAAAAAAAAAAAAAAA", cmd: "true", stdin: null, stdout: 5, stderr: 5 })).error).toEqual({ code: ErrorCodes.InvalidParams, message: "params.stdout: stream id 5 is already in use" });
      expect((await raw.call("no.such")).error).toEqual({ code: ErrorCodes.MethodNotFound, message: "no such method 'no.such'" });
      expect((await raw.call("daemon.info")).error).toMatchObject({ code: ErrorCodes.MethodNotFound, message: expect.stringMatching(/^daemon\.info is a per-host operator method/) });
      expect((await raw.call("rpc.discover")).result.info.title).toBe("sbx daemon");
      expect((await raw.sendText("{nope", "null")).error).toEqual({ code: ErrorCodes.ParseError, message: "message is not valid JSON" });
    } finally {
      raw.close();
    }
    const err = await Sandbox.create({ ...via(0), memroy: "1GiB" } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as RpcError).message).toBe("params.memroy: is not a known field");
  });

  it("takes several token files (a tenant's own, as the daemons' tenants[].tokenFile); a tenant's quota holds per host", async () => {
    const common = ["--daemon-token-file", join(fleet.dir, "operator"), ...fleet.daemons.flatMap((d) => ["--daemon", d.url])];
    // Without its file the tenant's token is refused at the door, though every daemon knows it.
    const without = await startGateway(["--tokens-file", join(fleet.dir, "tokens"), ...common]);
    const withFile = await startGateway(["--tokens-file", join(fleet.dir, "tokens"), "--tokens-file", gradedFile, ...common]);
    const made: Sandbox[] = [];
    try {
      const refused = await Sandbox.create({ url: without.url, token: GRADED }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(AuthError);
      await Promise.all([0, 1, 2].map((i) => withFile.waitForLog(new RegExp(`up: sandbox ids sbx_h${i}_`))));
      // quotas.sandboxes 1 on each of the 3 daemons: a host that refuses for the quota passes the create on.
      for (let i = 0; i < 3; i++) made.push(await Sandbox.create({ url: withFile.url, token: GRADED, timeout: "5m" }));
      expect(made.map((s) => prefixOf(s.id)).sort()).toEqual(["h0", "h1", "h2"]);
      const fourth = await Sandbox.create({ url: withFile.url, token: GRADED, timeout: "5m" }).catch((e: unknown) => e);
      expect(fourth).toBeInstanceOf(RpcError);
      expect((fourth as RpcError).message).toMatch(/tenant graded: 1 live sandboxes, its quota \(quotas\.sandboxes: 1\)/);
      // The other tenants, from the first file, still get in through the same gateway.
      await using other = killAtEnd(await Sandbox.create({ url: withFile.url, token: fleet.tenants[1]!, timeout: "5m" }));
      expect(prefixOf(other.id)).toMatch(/^h[012]$/);
    } finally {
      await Promise.all(made.map((s) => s.kill()));
      await Promise.all([without.stop(), withFile.stop()]);
    }
  });

  it("a daemon that cannot be reached does not stop the others; ids nobody claims may be on it, and the error says so", async () => {
    const gw = await startGateway([
      "--tokens-file", join(fleet.dir, "tokens"), "--daemon-token-file", join(fleet.dir, "operator"),
      ...fleet.daemons.map((d) => ["--daemon", d.url]).flat(), "--daemon", "ws://127.0.0.1:1",
    ]);
    try {
      const readyz = gw.url.replace("ws://", "http://") + "/readyz";
      for (let i = 0; i < 400 && (await fetch(readyz)).status !== 200; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await (await fetch(readyz)).text()).toBe("ready\n");
      const raw = await RawClient.open(gw.url, fleet.tenants[0]!);
      const res = await raw.call("fs.stat", { sandbox: "sbx_zz_AAAAAAAAAAAAAAAAAAAAAAAA", path: "x" });
      expect(res.error).toEqual({ code: ErrorCodes.SandboxNotFound, message: "no running sandbox 'sbx_zz_AAAAAAAAAAAAAAAAAAAAAAAA' (or it is on one of the 1 sbx daemons this gateway cannot reach now)" });
      raw.close();
      const sb = await Sandbox.create({ url: gw.url, token: fleet.tenants[0]!, timeout: "5m" });
      expect(prefixOf(sb.id)).toMatch(/^h[012]$/);
      await sb.kill();
      expect(gw.logs()).toMatch(/daemon ws:\/\/127\.0\.0\.1:1 discovered/);
    } finally {
      await gw.stop();
    }
  });

  it("a client that reads none of its answers costs the gateway a bounded amount: it stops reading that client, and serves others", async () => {
    const gw = fleet.gateways[0]!;
    const rss = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${gw.proc.pid}/status`, "utf8"))![1]) * 1024;
    const before = rss();
    const ws = new WebSocket(gw.url, { headers: { Authorization: `Bearer ${fleet.tenants[0]}` }, perMessageDeflate: false });
    await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
    let answers = 0;
    ws.on("message", () => answers++);
    ws.pause();
    // 2,000 calls of ~50 bytes (a few socket reads), each answered by the gateway itself with
    // the 110 KB OpenRPC document: 220 MB if the gateway kept answering.
    const CALLS = 2000;
    for (let i = 1; i <= CALLS; i++) ws.send(`{"jsonrpc":"2.0","id":${i},"method":"rpc.discover"}`);
    let peak = 0;
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 100));
      peak = Math.max(peak, rss() - before);
    }
    expect(peak).toBeLessThan(40 << 20);
    // Another client of the same replica is served meanwhile.
    const other = await RawClient.open(gw.url, fleet.tenants[0]!);
    expect((await other.call("rpc.discover")).result.info.title).toBe("sbx daemon");
    other.close();
    // Once it reads, every call is answered.
    ws.resume();
    for (let i = 0; i < 600 && answers < CALLS; i++) await new Promise((r) => setTimeout(r, 50));
    expect(answers).toBe(CALLS);
    ws.close();
  });

  it("a client that keeps granting a stream credit but reads nothing costs the gateway a bounded amount: the daemon's frames wait at the daemon", async () => {
    const gw = fleet.gateways[1]!;
    const rss = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${gw.proc.pid}/status`, "utf8"))![1]) * 1024;
    const sb = await Sandbox.create({ ...via(1), timeout: "5m" });
    const raw = await RawClient.open(gw.url, fleet.tenants[0]!);
    try {
      const spawned = await raw.call("process.spawn", { sandbox: sb.id, cmd: "head", args: ["-c", String(1 << 30), "/dev/zero"], stdin: null, stdout: 5, stderr: null });
      expect(spawned.result.pid).toBeGreaterThan(0);
      const before = rss();
      raw.ws.pause();
      // Credit is clamped to what was sent, so a client that reads nothing but keeps granting
      // the window (every 10 ms here: up to 100 MiB/s) has the daemon send on; the gateway must
      // not hold what the client does not read.
      const crediting = setInterval(() => raw.ws.send(encodeCredit(5, 1 << 20)), 10);
      try {
        let peak = 0;
        for (let i = 0; i < 30; i++) {
          await new Promise((r) => setTimeout(r, 100));
          peak = Math.max(peak, rss() - before);
        }
        expect(peak).toBeLessThan(40 << 20);
        // Once it reads, the stream flows again: well past what any buffer on the way could hold.
        raw.ws.resume();
        const got = () => raw.frames.filter((f) => f.stream === 5 && f.op === FrameOp.Data).reduce((n, f) => n + f.payload.byteLength, 0);
        for (let i = 0; i < 600 && got() < 96 << 20; i++) await new Promise((r) => setTimeout(r, 50));
        expect(got()).toBeGreaterThanOrEqual(96 << 20);
      } finally {
        clearInterval(crediting);
      }
    } finally {
      raw.close();
      await sb.kill();
    }
  });

  it("passes stream frames through untouched: a client overrunning its credit is closed by the daemon, and so by the gateway (1008)", async () => {
    const sb = await Sandbox.create({ ...via(0), timeout: "5m" });
    const raw = await RawClient.open(fleet.gateways[1]!.url, fleet.tenants[0]!);
    try {
      const spawned = await raw.call("process.spawn", { sandbox: sb.id, cmd: "sleep", args: ["30"], stdin: 7, stdout: null, stderr: null });
      expect(spawned.result.pid).toBeGreaterThan(0);
      const chunk = new Uint8Array(256 * 1024);
      // Two chunks past the window, into a process that reads nothing.
      for (let sent = 0; sent <= STREAM_WINDOW + chunk.length; sent += chunk.length) raw.ws.send(encodeFrame(FrameOp.Data, 7, chunk));
      for (let i = 0; i < 300 && !raw.closed; i++) await new Promise((r) => setTimeout(r, 50));
      expect(raw.closed).toEqual({ code: 1008, reason: "flow control violated" });
      // A malformed frame is refused by the gateway itself, in the daemon's words.
      const raw2 = await RawClient.open(fleet.gateways[1]!.url, fleet.tenants[0]!);
      raw2.ws.send(new Uint8Array([9, 0, 0, 0, 1]));
      for (let i = 0; i < 300 && !raw2.closed; i++) await new Promise((r) => setTimeout(r, 50));
      expect(raw2.closed).toEqual({ code: 1008, reason: "malformed stream frame: unknown frame op 9" });
    } finally {
      raw.close();
      await sb.kill();
    }
  });
});
