/**
 * Bound connections (`bind` in the upgrade URL): a connection that promised to talk about one
 * sandbox is held to it, so that a gateway may pass its bytes through to that sandbox's host
 * unread. The attacks: naming another sandbox, listing or touching what is not the sandbox's,
 * making a second sandbox (also with two creates at once), bad bind values.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCodes, FrameOp } from "@sbx/protocol";
import { useDaemon } from "../helpers/fixtures.js";
import { RawClient, tryUpgrade } from "../helpers/raw.js";

/** Attempts an upgrade to `url` with `token`: the HTTP status it was refused with and the body, or 101. */
const upgrade = (url: string, token: string) => tryUpgrade(url, { Authorization: `Bearer ${token}` });

const daemon = useDaemon();
let owner: RawClient;
/** A snapshot's slug (root mode), for creates that take many event-loop turns. */
let snapshot: string | null = null;
const slug = `bind-${process.pid}`;
let a: string;
let b: string;
const made: string[] = [];

const bound = (bind: string) => RawClient.open(`${daemon.url}/?bind=${encodeURIComponent(bind)}`, daemon.token);
const refusedFor = (id: string) => `this connection is bound to sandbox ${id} (bind=${id} in its URL)`;

async function create(raw: RawClient, params: Record<string, unknown> = {}): Promise<any> {
  const r = await raw.call("sandbox.create", { timeout: "5m", ...params });
  if (r.result) made.push(r.result.id);
  return r;
}

beforeAll(async () => {
  owner = await RawClient.open(daemon.url, daemon.token);
  a = (await create(owner)).result.id;
  b = (await create(owner)).result.id;
  if (process.getuid?.() === 0) {
    expect((await owner.call("volume.create", { slug: `${slug}-v`, capacity: "16MiB" })).error).toBeUndefined();
    expect((await owner.call("volume.snapshot", { idOrSlug: `${slug}-v`, slug: `${slug}-s` })).error).toBeUndefined();
    snapshot = `${slug}-s`;
  }
});
afterAll(async () => {
  if (!owner) return;
  await Promise.all(made.map((id) => owner.call("sandbox.kill", { id })));
  if (snapshot) {
    await owner.call("snapshot.delete", { idOrSlug: snapshot });
    await owner.call("volume.delete", { idOrSlug: `${slug}-v` });
  }
  owner.close();
});

describe("the upgrade", () => {
  it.each([
    ["bind=", 'bind="" in the URL: must be a sandbox id (sbx_ and at least 20 letters and digits, at most 128 characters) or "new"'],
    ["bind=all", 'bind="all" in the URL: must be a sandbox id (sbx_ and at least 20 letters and digits, at most 128 characters) or "new"'],
    ["bind=sbx_short", 'bind="sbx_short" in the URL: must be a sandbox id (sbx_ and at least 20 letters and digits, at most 128 characters) or "new"'],
    ["bind=new&bind=new", 'bind is given 2 times in the URL: give it once, as a sandbox id or "new"'],
    ["bind=%0d%0aX-Injected:%201", 'bind="\\r\\nX-Injected: 1" in the URL: must be a sandbox id'],
  ])("refuses ?%s with HTTP 400 naming the problem", async (query, problem) => {
    const r = await upgrade(`${daemon.url}/?${query}`, daemon.token);
    expect(r.status).toBe(400);
    expect(r.body).toMatch(new RegExp(`^${problem.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}.*\n$`));
  });

  it("checks the token first: a bad bind with a bad token is a 401", async () => {
    expect(await upgrade(`${daemon.url}/?bind=all`, `${daemon.token}x`)).toEqual({ status: 401, body: "Unauthorized\n" });
  });

  it("without bind, any path and query serve every call as before", async () => {
    expect((await upgrade(`${daemon.url}/some/path?x=1`, daemon.token)).status).toBe(101);
    const raw = await RawClient.open(`${daemon.url}/some/path?x=1&binder=new`, daemon.token);
    const list = await raw.call("sandbox.list", {});
    expect(list.result.map((s: { id: string }) => s.id)).toEqual(expect.arrayContaining([a, b]));
    expect((await raw.call("fs.stat", { sandbox: a, path: "." })).result.isDirectory).toBe(true);
    expect((await raw.call("fs.stat", { sandbox: b, path: "." })).result.isDirectory).toBe(true);
    raw.close();
  });
});

describe("bind=<id>", () => {
  let raw: RawClient;
  beforeAll(async () => {
    raw = await bound(a);
  });
  afterAll(() => raw?.close());

  it("serves calls naming the bound sandbox, in either param, and rpc.discover", async () => {
    expect((await raw.call("sandbox.connect", { id: a })).result.id).toBe(a);
    expect((await raw.call("fs.stat", { sandbox: a, path: "." })).result.isDirectory).toBe(true);
    expect((await raw.call("env.set", { sandbox: a, name: "BOUND", value: "yes" })).result).toBeNull();
    expect((await raw.call("env.get", { sandbox: a, name: "BOUND" })).result).toBe("yes");
    expect((await raw.call("sandbox.usage", { id: a })).result.wallSeconds).toBeGreaterThan(0);
    expect((await raw.call("rpc.discover")).result.openrpc).toBe("1.3.2");
  });

  it("refuses a call naming another sandbox, naming both and the way out, and it does not run", async () => {
    const r = await raw.call("fs.writeFile", { sandbox: b, path: "from-a", stream: 9 });
    expect(r.error).toEqual({ code: ErrorCodes.Forbidden, message: `${refusedFor(a)}: fs.writeFile names ${b}; open a connection without bind for other sandboxes` });
    expect((await raw.call("sandbox.kill", { id: b })).error.message).toBe(`${refusedFor(a)}: sandbox.kill names ${b}; open a connection without bind for other sandboxes`);
    // b is untouched: alive, and no file was made.
    expect((await owner.call("fs.stat", { sandbox: b, path: "from-a" })).error.code).toBe(ErrorCodes.FileSystem);
    // The refused call registered no stream: its id is free for a call that runs.
    const ok = raw.call("fs.writeFile", { sandbox: a, path: "from-a", stream: 9 });
    raw.end(9);
    expect((await ok).error).toBeUndefined();
  });

  it.each([
    ["sandbox.list", {}, "sandbox.list is not about that one sandbox; call it on a connection without bind"],
    ["volume.list", {}, "volume.list is not about that one sandbox; call it on a connection without bind"],
    ["snapshot.get", { idOrSlug: "x" }, "snapshot.get is not about that one sandbox; call it on a connection without bind"],
    ["daemon.info", {}, "daemon.info is not about that one sandbox; call it on a connection without bind"],
    ["sandbox.create", {}, "it makes no other sandbox; call sandbox.create on a connection without bind (or with bind=new)"],
  ])("refuses %s", async (method, params, why) => {
    expect((await raw.call(method, params)).error).toEqual({ code: ErrorCodes.Forbidden, message: `${refusedFor(a)}: ${why}` });
  });

  it("checks a call as before first: malformed calls get the errors they always did", async () => {
    expect((await raw.call("fs.stat", { sandbox: b })).error).toEqual({ code: ErrorCodes.InvalidParams, message: "params.path: is required" });
    expect((await raw.call("no.such", {})).error.code).toBe(ErrorCodes.MethodNotFound);
  });

  it("streams work on it: a process's output and exit, a file written and read back", async () => {
    const spawn = await raw.call("process.spawn", { sandbox: a, cmd: "bash", args: ["-c", "cat; echo out; echo err >&2"], stdin: 11, stdout: 12, stderr: 13 });
    expect(spawn.error).toBeUndefined();
    raw.data(11, new TextEncoder().encode("in\n"));
    raw.end(11);
    const pid = spawn.result.pid;
    for (let i = 0; i < 200 && !raw.notifications.some((n) => n.method === "process.exit" && n.params.pid === pid); i++) await new Promise((r) => setTimeout(r, 25));
    expect(raw.notifications.find((n) => n.method === "process.exit" && n.params.pid === pid)?.params.status).toMatchObject({ success: true, code: 0 });
    const text = (s: number) => new TextDecoder().decode(Buffer.concat(raw.frames.filter((f) => f.stream === s && f.op === FrameOp.Data).map((f) => f.payload)));
    expect(text(12)).toBe("in\nout\n");
    expect(text(13)).toBe("err\n");

    const write = raw.call("fs.writeFile", { sandbox: a, path: "bound.txt", stream: 14 });
    raw.data(14, new TextEncoder().encode("bound bytes"));
    raw.end(14);
    expect((await write).error).toBeUndefined();
    expect((await owner.call("fs.stat", { sandbox: a, path: "bound.txt" })).result.size).toBe(11);
  }, 30_000);

  it("a bound sandbox that does not exist: calls naming it get SandboxNotFound", async () => {
    const ghost = "sbx_AAAAAAAAAAAAAAAAAAAAAAAA";
    const g = await bound(ghost);
    expect((await g.call("fs.stat", { sandbox: ghost, path: "." })).error.code).toBe(ErrorCodes.SandboxNotFound);
    expect((await g.call("fs.stat", { sandbox: a, path: "." })).error).toEqual({ code: ErrorCodes.Forbidden, message: `${refusedFor(ghost)}: fs.stat names ${a}; open a connection without bind for other sandboxes` });
    g.close();
  });
});

describe("bind=new", () => {
  it("accepts only create and rpc.discover, one create at a time; a failed create leaves it free; then it is bound to its sandbox", async () => {
    const raw = await bound("new");
    const before = "this connection has bind=new in its URL: it accepts only sandbox.create (and rpc.discover) until it has made its sandbox";
    expect((await raw.call("fs.stat", { sandbox: a, path: "." })).error).toEqual({ code: ErrorCodes.Forbidden, message: `${before}; call fs.stat after that create, or on a connection without bind` });
    expect((await raw.call("sandbox.list", {})).error.message).toBe(`${before}; call sandbox.list after that create, or on a connection without bind`);
    expect((await raw.call("rpc.discover")).result.openrpc).toBe("1.3.2");

    // A create that fails (no such root image) does not bind.
    expect((await create(raw, { root: "no-such-image" })).error.code).toBe(ErrorCodes.VolumeNotFound);

    // Two creates at once: the second is refused while the first runs, so one connection makes one
    // sandbox. A warm sandbox is handed out within one event-loop turn, before the daemon reads the
    // second call; one mounting a snapshot is launched, which takes many (volumes: root mode only).
    const slow = snapshot ? { volumes: { "/data": snapshot } } : {};
    const [first, second] = await Promise.all([create(raw, slow), create(raw, slow)]);
    expect(first.result.id).toMatch(/^sbx_/);
    const mine = first.result.id as string;
    const stillRunning = "this connection has bind=new in its URL and its sandbox.create is still running: it makes one sandbox; make others on a connection without bind (or another with bind=new)";
    const afterIt = `this connection is bound to sandbox ${mine} (it made it, with bind=new in its URL): it makes no other sandbox; call sandbox.create on a connection without bind (or with bind=new)`;
    expect(second.error.code).toBe(ErrorCodes.Forbidden);
    if (snapshot) expect(second.error.message).toBe(stillRunning);
    else expect([stillRunning, afterIt]).toContain(second.error.message);
    const now = `this connection is bound to sandbox ${mine} (it made it, with bind=new in its URL)`;
    expect((await raw.call("fs.stat", { sandbox: mine, path: "." })).result.isDirectory).toBe(true);
    expect((await create(raw)).error).toEqual({ code: ErrorCodes.Forbidden, message: afterIt });
    expect((await raw.call("fs.stat", { sandbox: a, path: "." })).error.message).toBe(`${now}: fs.stat names ${a}; open a connection without bind for other sandboxes`);
    // Only one sandbox came of it.
    const ids = (await owner.call("sandbox.list", {})).result.map((s: { id: string }) => s.id);
    expect(ids.filter((id: string) => !made.includes(id) || id === mine)).toEqual([mine]);
    raw.close();
  }, 60_000);
});
