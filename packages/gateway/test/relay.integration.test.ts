/**
 * Bound connections and the native relay: a client connection about one sandbox (`bind=` in its
 * URL) is handed, once routed and quiet, to `sbx-gateway-relay`, which carries its bytes from
 * then on. It keeps working with the gateway's own process stopped (the proof that the relay, not
 * the gateway, carries it); a lost daemon gives its client a sandbox.exit and close code 4001
 * naming the host; bad `bind` values are refused; relayed connections count against
 * maxConnections; a gateway shutting down closes them with 1001; without the relay, bound
 * connections stay on the gateway's own path.
 */
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ErrorCodes, FrameOp } from "@sbx/protocol";
import { Sandbox } from "@sbx/client";
import { RawClient, tryUpgrade } from "../../daemon/test/helpers/raw.js";
import { startFleet, startGateway, type TestFleet, type TestGateway } from "./helpers/fleet.js";

let fleet: TestFleet;
let gw: TestGateway;
const prefixOf = (id: string) => /^sbx_(h\d)_/.exec(id)?.[1];

beforeAll(async () => {
  fleet = await startFleet({ daemons: 3, gateways: 1 });
  gw = fleet.gateways[0]!;
});
afterAll(async () => {
  await fleet?.[Symbol.asyncDispose]();
});

/** The gateway's relay process. */
function relayPid(g: TestGateway): number {
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === g.proc.pid && stat.includes("(sbx-gateway-re")) return Number(pid);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`gateway ${g.proc.pid} has no relay process`);
}

/** Connections the relay holds: two sockets each, beyond its own five descriptors. */
function relayed(g: TestGateway): number {
  const pid = relayPid(g);
  const fds = readdirSync(`/proc/${pid}/fd`).filter((fd) => Number(fd) > 4);
  const link = (fd: string) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return ""; // closed meanwhile
    }
  };
  return fds.filter((fd) => link(fd).startsWith("socket:")).length / 2;
}

/** The HTTP status an upgrade to `url` (as the first tenant) was answered with; 101 if it opened. */
const upgradeStatus = async (url: string) => (await tryUpgrade(url, { Authorization: `Bearer ${fleet.tenants[0]}` })).status;

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A gateway of the test's own over the fleet's daemons, with `settings` in its config file; resolves once it sees every daemon up. */
async function ownGateway(name: string, settings: Record<string, unknown> = {}): Promise<TestGateway> {
  const config = join(fleet.dir, `gateway-${name}.json`);
  writeFileSync(config, JSON.stringify(settings));
  const g = await startGateway(["--config", config, "--tokens-file", join(fleet.dir, "tokens"), "--daemon-token-file", join(fleet.dir, "operator"), ...fleet.daemons.flatMap((d) => ["--daemon", d.url])]);
  try {
    await Promise.all(fleet.daemons.map((_, i) => g.waitForLog(new RegExp(`up: sandbox ids sbx_h${i}_`))));
  } catch (err) {
    await g.stop();
    throw err;
  }
  return g;
}

/** A sandbox made on daemon `host` (its index), on a connection kept open: the sandbox lives as long as it. */
async function sandboxOn(host: number, keep: RawClient[]): Promise<string> {
  const raw = await RawClient.open(fleet.daemons[host]!.url, fleet.tenants[0]!);
  keep.push(raw);
  const id = (await raw.call("sandbox.create", { timeout: "5m" })).result.id as string;
  expect(prefixOf(id)).toBe(`h${host}`);
  return id;
}

/** stdout of `echo` through a raw connection: the stream's data, then its end. */
async function echo(raw: RawClient, sandbox: string, text: string, stream: number): Promise<string> {
  const answer = await raw.call("process.spawn", { sandbox, cmd: "echo", args: [text], stdin: null, stdout: stream, stderr: null });
  expect(answer.error).toBeUndefined();
  await until("the stream's end", () => raw.frames.some((f) => f.stream === stream && f.op === FrameOp.End));
  return raw.frames
    .filter((f) => f.stream === stream && f.op === FrameOp.Data)
    .map((f) => new TextDecoder().decode(f.payload))
    .join("");
}

it("a connection bound to a sandbox is relayed once routed: calls and streams work, and go on while the gateway process is stopped", async () => {
  const keep: RawClient[] = [];
  const id = await sandboxOn(0, keep);
  const before = relayed(gw);
  const raw = await RawClient.open(`${gw.url}/?bind=${id}`, fleet.tenants[0]!);
  expect((await raw.call("sandbox.connect", { id })).result.id).toBe(id);
  await until("the connection to reach the relay", () => relayed(gw) === before + 1);
  expect(await echo(raw, id, "through the gateway's relay", 3)).toBe("through the gateway's relay\n");

  process.kill(gw.proc.pid!, "SIGSTOP");
  try {
    const written = raw.call("fs.writeFile", { sandbox: id, path: "x.txt", stream: 5 });
    raw.data(5, new TextEncoder().encode("written while the gateway is stopped"));
    raw.end(5);
    expect((await written).error).toBeUndefined();
    expect(await echo(raw, id, "while the gateway is stopped", 7)).toBe("while the gateway is stopped\n");
    expect((await raw.call("fs.stat", { sandbox: id, path: "." })).result.isDirectory).toBe(true);
  } finally {
    process.kill(gw.proc.pid!, "SIGCONT");
  }
  raw.close();
  await until("the relay to let the connection go", () => relayed(gw) === before);
  for (const k of keep) k.close();
});

it("bind=new: the gateway places the create, then the connection is relayed", async () => {
  const before = relayed(gw);
  const raw = await RawClient.open(`${gw.url}/?bind=new`, fleet.tenants[0]!);
  const created = await raw.call("sandbox.create", { timeout: "5m" });
  const id = created.result.id as string;
  expect(prefixOf(id)).toMatch(/^h\d$/);
  await until("the connection to reach the relay", () => relayed(gw) === before + 1);
  expect(await echo(raw, id, "made and relayed", 2)).toBe("made and relayed\n");
  raw.close();
  await until("the relay to let the connection go", () => relayed(gw) === before);
});

it("on its own path too, the gateway holds a bound connection to its sandbox as a daemon does", async () => {
  const own = await ownGateway("own", { nativeRelay: false });
  const keep: RawClient[] = [];
  try {
    const id = await sandboxOn(0, keep);
    const other = await sandboxOn(1, keep);
    const bound = await RawClient.open(`${own.url}/?bind=${id}`, fleet.tenants[0]!);
    expect((await bound.call("fs.stat", { sandbox: id, path: "." })).result.isDirectory).toBe(true);
    const listed = await bound.call("sandbox.list", {});
    expect(listed.error).toEqual({ code: ErrorCodes.Forbidden, message: expect.stringMatching(new RegExp(`^this connection is bound to sandbox ${id} \\(bind=${id} in its URL\\): sandbox\\.list is not about that one sandbox`)) });
    const elsewhere = await bound.call("fs.stat", { sandbox: other, path: "." });
    expect(elsewhere.error).toEqual({ code: ErrorCodes.Forbidden, message: expect.stringContaining(`fs.stat names ${other}`) });
    const fresh = await RawClient.open(`${own.url}/?bind=new`, fleet.tenants[0]!);
    expect((await fresh.call("sandbox.list", {})).error.code).toBe(ErrorCodes.Forbidden);
    const made = (await fresh.call("sandbox.create", { timeout: "5m" })).result.id as string;
    expect((await fresh.call("sandbox.create", {})).error).toEqual({ code: ErrorCodes.Forbidden, message: expect.stringMatching(new RegExp(`^this connection is bound to sandbox ${made} \\(it made it, with bind=new in its URL\\)`)) });
    expect((await fresh.call("fs.stat", { sandbox: made, path: "." })).result.isDirectory).toBe(true);
    bound.close();
    fresh.close();
  } finally {
    for (const k of keep) k.close();
    await own.stop();
  }
});

it("on its own path, the SDK's stream writes (DATA as header and payload, two fragments) reach the sandbox byte for byte", async () => {
  const own = await ownGateway("own-fragments", { nativeRelay: false }); // no relay process: every byte through the gateway's own path
  const keep: RawClient[] = [];
  try {
    const id = await sandboxOn(1, keep);
    await using sb = await Sandbox.connect(id, { url: own.url, token: fleet.tenants[0]! });
    const data = randomBytes(3 << 20);
    await sb.fs.writeFile("up.bin", data);
    expect((await sb.sh`sha256sum up.bin`.text()).split(" ")[0]).toBe(createHash("sha256").update(data).digest("hex"));
    const p = await sb.spawn("wc", { args: ["-c"], stdin: "piped" });
    const writer = p.stdin!.getWriter();
    for (let i = 0; i < 5; i++) await writer.write(new Uint8Array(700_000 + i));
    await writer.close();
    expect((await p.output()).stdoutText!.trim()).toBe(String(5 * 700_000 + 10));
  } finally {
    for (const k of keep) k.close();
    await own.stop();
  }
});

it("bad bind values are refused before the upgrade, naming the problem", async () => {
  expect(await upgradeStatus(`${gw.url}/?bind=bogus`)).toBe(400);
  expect(await upgradeStatus(`${gw.url}/?bind=new&bind=new`)).toBe(400);
  expect(await upgradeStatus(`${gw.url}/?bind=`)).toBe(400);
  expect(await upgradeStatus(`${gw.url}/?bind=sbx_h0_${"a".repeat(130)}`)).toBe(400); // longer than any id
});

it("relayed connections count against maxConnections", async () => {
  const small = await ownGateway("max2", { maxConnections: 2 });
  const keep: RawClient[] = [];
  try {
    const id = await sandboxOn(0, keep);
    const bound = [await RawClient.open(`${small.url}/?bind=${id}`, fleet.tenants[0]!), await RawClient.open(`${small.url}/?bind=${id}`, fleet.tenants[0]!)];
    await until("both connections to reach the relay", () => relayed(small) === 2);
    expect(await upgradeStatus(`${small.url}/?bind=${id}`)).toBe(503);
    bound[0]!.close();
    await until("the relay to let one go", () => relayed(small) === 1);
    const again = await RawClient.open(`${small.url}/?bind=${id}`, fleet.tenants[0]!);
    expect((await again.call("fs.stat", { sandbox: id, path: "." })).result.isDirectory).toBe(true);
    again.close();
    bound[1]!.close();
  } finally {
    for (const k of keep) k.close();
    await small.stop();
  }
});

it("a gateway shutting down closes its relayed connections with 1001, as it does its own", async () => {
  const leaving = await ownGateway("leaving");
  const keep: RawClient[] = [];
  try {
    const id = await sandboxOn(0, keep);
    const relayedClient = await RawClient.open(`${leaving.url}/?bind=${id}`, fleet.tenants[0]!);
    const ownClient = await RawClient.open(leaving.url, fleet.tenants[0]!);
    expect((await ownClient.call("sandbox.connect", { id })).result.id).toBe(id);
    await until("the bound connection to reach the relay", () => relayed(leaving) === 1);
    await leaving.stop("SIGTERM");
    await until("both clients to be closed", () => relayedClient.closed !== null && ownClient.closed !== null);
    expect(relayedClient.closed).toEqual({ code: 1001, reason: "gateway shutting down" });
    expect(ownClient.closed).toEqual({ code: 1001, reason: "gateway shutting down" });
  } finally {
    for (const k of keep) k.close();
    await leaving.stop();
  }
});

it("without its relay (it died), the gateway keeps bound connections on its own path", async () => {
  const other = await ownGateway("dead-relay");
  const keep: RawClient[] = [];
  try {
    process.kill(relayPid(other), "SIGKILL");
    await other.waitForLog(/error the native relay exited \(SIGKILL\)/);
    const id = await sandboxOn(0, keep);
    const raw = await RawClient.open(`${other.url}/?bind=${id}`, fleet.tenants[0]!);
    expect((await raw.call("sandbox.connect", { id })).result.id).toBe(id);
    expect(await echo(raw, id, "on the gateway's own path", 4)).toBe("on the gateway's own path\n");
    raw.close();
  } finally {
    for (const k of keep) k.close();
    await other.stop();
  }
});

it("a daemon killed under a relayed connection: its client is told at once, with sandbox.exit and close code 4001 naming the host", async () => {
  const keep: RawClient[] = [];
  const id = await sandboxOn(2, keep);
  const before = relayed(gw);
  const raw = await RawClient.open(`${gw.url}/?bind=${id}`, fleet.tenants[0]!);
  expect((await raw.call("sandbox.connect", { id })).result.id).toBe(id);
  await until("the connection to reach the relay", () => relayed(gw) === before + 1);
  const killedAt = Date.now();
  await fleet.daemons[2]!.stop("SIGKILL");
  await until("the client to be told", () => raw.closed !== null);
  expect(Date.now() - killedAt).toBeLessThan(3000);
  expect(raw.closed).toEqual({ code: 4001, reason: expect.stringMatching(/^host lost: the sbx daemon ws:\/\/127\.0\.0\.1:\d+ closed the connection$/) });
  expect(raw.notifications.filter((n) => n.method === "sandbox.exit")).toEqual([
    { jsonrpc: "2.0", method: "sandbox.exit", params: { id, reason: "error", message: expect.stringMatching(/^host lost: the sbx daemon ws:\/\/127\.0\.0\.1:\d+ closed the connection$/) } },
  ]);
  await until("the relay to let the connection go", () => relayed(gw) === before);
  await gw.waitForLog(/warn host lost: ws:\/\/127\.0\.0\.1:\d+: a relayed connection to sandbox sbx_h2_\w+ ended without the daemon's close frame \(the client was told\)/);
  for (const k of keep) k.close();
});
