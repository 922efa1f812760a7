import { readdirSync, readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { ConnectionClosedError, ConnectionError, Sandbox, SandboxNotFoundError } from "@sbx/client";
import { startDaemon } from "../helpers/daemon.js";
import { useDaemon } from "../helpers/fixtures.js";

const daemon = useDaemon();
const cleanup: Sandbox[] = [];

const ID = /^sbx_[A-Za-z0-9]{20,}$/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const uniq = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

async function create(options: Parameters<typeof Sandbox.create>[0] = {}): Promise<Sandbox> {
  const sb = await Sandbox.create({ ...daemon.opts, ...options });
  cleanup.push(sb);
  return sb;
}

async function listedIds(labels?: Record<string, string>): Promise<string[]> {
  return (await Sandbox.list({ ...daemon.opts, ...(labels ? { labels } : {}) })).map((s) => s.id);
}

/** Host pids whose argv contains `marker` as one whole argument. */
function hostPidsWithArg(marker: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z") continue;
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").includes(marker)) out.push(Number(entry));
    } catch {}
  }
  return out;
}

/** Starts `sleep <unique>` in the sandbox and waits until the host sees it. */
async function sleeper(sb: Sandbox): Promise<string> {
  const marker = `${700000 + Math.floor(Math.random() * 100000)}.${Math.floor(Math.random() * 1e6)}`;
  await sb.spawn("sleep", { args: [marker], stdout: "null", stderr: "null" });
  const deadline = Date.now() + 5000;
  while (hostPidsWithArg(marker).length === 0) {
    if (Date.now() > deadline) throw new Error("sleeper never showed up on the host");
    await sleep(20);
  }
  return marker;
}

async function expectGone(id: string): Promise<void> {
  expect(await listedIds()).not.toContain(id);
  const err = await Sandbox.connect(id, daemon.opts).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(SandboxNotFoundError);
  expect((err as SandboxNotFoundError).rpcCode).toBe(-32001);
  expect((err as Error).message).toBe(`no running sandbox '${id}'`);
}

afterAll(async () => {
  for (const sb of cleanup) await sb.kill().catch(() => {});
});

describe("create, list, connect, kill", () => {
  it("gives each sandbox a distinct unguessable id and lists it with its labels", async () => {
    const suite = `suite-${uniq()}`;
    const before = Date.now();
    const a = await create({ labels: { suite, role: "web" } });
    const b = await create({ labels: { suite, role: "db" } });
    const c = await create({ labels: { suite, role: "web", tier: "gold" } });
    expect(a.id).toMatch(ID);
    expect(b.id).toMatch(ID);
    expect(new Set([a.id, b.id, c.id]).size).toBe(3);
    expect(a.labels).toEqual({ suite, role: "web" });

    const all = await Sandbox.list({ ...daemon.opts, labels: { suite } });
    expect(all.map((s) => s.id).sort()).toEqual([a.id, b.id, c.id].sort());
    const listedA = all.find((s) => s.id === a.id)!;
    expect(listedA.labels).toEqual({ suite, role: "web" });
    expect(listedA.status).toBe("running");
    expect(listedA.expiresAt).toBeNull(); // a session sandbox
    expect(listedA.createdAt).toBeInstanceOf(Date);
    expect(listedA.createdAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(listedA.createdAt.getTime()).toBeLessThanOrEqual(Date.now());

    expect((await listedIds({ suite, role: "web" })).sort()).toEqual([a.id, c.id].sort());
    expect(await listedIds({ suite, role: "web", tier: "gold" })).toEqual([c.id]);
    expect(await listedIds({ suite, role: "cache" })).toEqual([]);
    expect(await listedIds({ suite: `${suite}-other` })).toEqual([]);
    // Without a filter, every sandbox of the token is listed.
    expect(await listedIds()).toEqual(expect.arrayContaining([a.id, b.id, c.id]));
    await Promise.all([a.kill(), b.kill(), c.kill()]);
    expect(await listedIds({ suite })).toEqual([]);
  });

  it("ids are random, not a counter or a clock: every position varies, no shared prefixes, no order", async () => {
    const N = 40;
    const ids: string[] = [];
    const kills: Array<Promise<void>> = [];
    // Created one after another (a counter or a clock would show), each killed at once.
    for (let i = 0; i < N; i++) {
      const sb = await Sandbox.create(daemon.opts);
      ids.push(sb.id);
      kills.push(sb.kill());
    }
    await Promise.all(kills);
    const parts = ids.map((id) => /^sbx_([A-Za-z0-9]{24})$/.exec(id)?.[1] ?? expect.fail(`id ${id} is not sbx_ and 24 alphanumerics`));
    expect(new Set(parts).size).toBe(N);
    // Each of the 24 positions takes many of the 62 characters: ~30 distinct of 40 draws expected, under 15 is ~5 sd off.
    const distinct = Array.from({ length: 24 }, (_, i) => new Set(parts.map((p) => p[i])).size);
    expect(Math.min(...distinct), `distinct characters per position: ${distinct}`).toBeGreaterThanOrEqual(15);
    // No two share a prefix of 4 or more characters (random: ~5e-5 chance for 40 ids).
    const prefixes = new Set(parts.map((p) => p.slice(0, 4)));
    expect(prefixes.size).toBe(N);
    // Consecutive ids are not ordered: about half the steps go up (random: 19.5 of 39, sd ~1.8).
    const ups = parts.slice(1).filter((p, i) => p > parts[i]!).length;
    expect(ups, `ids in creation order: ${parts.join(" ")}`).toBeGreaterThanOrEqual(10);
    expect(ups).toBeLessThanOrEqual(N - 1 - 10);
  });

  it("connect(id) from a second connection runs commands in the same sandbox", async () => {
    const sb = await create();
    await sb.sh`echo from-the-creator > /home/user/note`;
    const other = await Sandbox.connect(sb.id, daemon.opts);
    expect(other.id).toBe(sb.id);
    expect(await other.sh`cat /home/user/note`.text()).toBe("from-the-creator\n");
    const p = await other.spawn("bash", { args: ["-c", "echo $((6 * 7))"] });
    expect((await p.output()).stdoutText).toBe("42\n");
    // Closing (or disposing) a handle that only connected leaves the sandbox running.
    await other[Symbol.asyncDispose]();
    expect(await sb.sh`echo still-here`.text()).toBe("still-here\n");
    expect(await listedIds()).toContain(sb.id);
    await sb.kill();
  });

  it("kill destroys the sandbox: later calls from any handle reject with SandboxNotFoundError", async () => {
    const sb = await create();
    const marker = await sleeper(sb);
    const other = await Sandbox.connect(sb.id, daemon.opts);
    await sb.kill();
    const spawnErr = await other.sh`true`.catch((e: unknown) => e);
    expect(spawnErr).toBeInstanceOf(SandboxNotFoundError);
    expect((spawnErr as Error).message).toBe(`no running sandbox '${sb.id}'`);
    expect(await other.env.get("HOME").catch((e: unknown) => e)).toBeInstanceOf(SandboxNotFoundError);
    expect(await other.fs.stat("/home/user").catch((e: unknown) => e)).toBeInstanceOf(SandboxNotFoundError);
    expect(await other.extendTimeout("1m").catch((e: unknown) => e)).toBeInstanceOf(SandboxNotFoundError);
    await expectGone(sb.id);
    // Its processes are really gone from the host, too.
    await sleep(300);
    expect(hostPidsWithArg(marker)).toEqual([]);
    await other.close();
  });

  it("an unknown id is SandboxNotFoundError", async () => {
    const id = `sbx_${"Z".repeat(24)}`;
    const err = await Sandbox.connect(id, daemon.opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxNotFoundError);
    expect((err as SandboxNotFoundError).code).toBe("SANDBOX_NOT_FOUND");
    expect((err as SandboxNotFoundError).rpcCode).toBe(-32001);
    expect((err as Error).message).toBe(`no running sandbox '${id}'`);
    const garbage = await Sandbox.connect("not-even-an-id", daemon.opts).catch((e: unknown) => e);
    expect(garbage).toBeInstanceOf(SandboxNotFoundError);
  });

  it("await using closes the connection when the block ends, as Deno's: a timed sandbox lives on until killed", async () => {
    let id = "";
    let marker = "";
    let closed: Promise<void> | null = null;
    {
      await using sb = await Sandbox.create({ ...daemon.opts, timeout: "10m" });
      id = sb.id;
      closed = sb.closed;
      marker = await sleeper(sb);
      expect(await listedIds()).toContain(id);
    }
    await closed;
    await sleep(300);
    expect(await listedIds()).toContain(id);
    expect(hostPidsWithArg(marker)).not.toEqual([]);
    const again = await Sandbox.connect({ id, ...daemon.opts });
    await again.kill();
    await expectGone(id);
    await sleep(300);
    expect(hostPidsWithArg(marker)).toEqual([]);
  });
});

describe("timeouts", () => {
  it('a duration timeout ("2s") kills the sandbox at expiry', async () => {
    const created = Date.now();
    const sb = await create({ timeout: "2s" });
    expect(sb.expiresAt).toBeInstanceOf(Date);
    expect(Math.abs(sb.expiresAt!.getTime() - (created + 2000))).toBeLessThan(1000);
    const listed = (await Sandbox.list(daemon.opts)).find((s) => s.id === sb.id)!;
    expect(listed.expiresAt!.toISOString()).toBe(sb.expiresAt!.toISOString());
    const marker = await sleeper(sb);
    const p = await sb.spawn("sleep", { args: ["30"] });
    const status = await p.status;
    const diedAt = Date.now();
    expect(status).toEqual({ success: false, code: 137, signal: "SIGKILL", oom: false });
    expect(diedAt).toBeGreaterThanOrEqual(sb.expiresAt!.getTime() - 50);
    expect(diedAt).toBeLessThan(sb.expiresAt!.getTime() + 1500);
    await expectGone(sb.id);
    expect(await sb.sh`true`.catch((e: unknown) => e)).toBeInstanceOf(SandboxNotFoundError);
    await sleep(200);
    expect(hostPidsWithArg(marker)).toEqual([]);
    expect(daemon.logs()).toContain(`sandbox ${sb.id} stopping (timeout)`);
  });

  it("extendTimeout sets expiresAt to now + the duration (as Deno's); the sandbox outlives the original expiry, then dies at the new one", async () => {
    const sb = await create({ timeout: "2s" });
    const original = sb.expiresAt!;
    const before = Date.now();
    const extended = await sb.extendTimeout("3s");
    expect(extended.getTime()).toBeGreaterThanOrEqual(before + 3000);
    expect(extended.getTime()).toBeLessThanOrEqual(Date.now() + 3000);
    expect(extended.getTime()).toBeGreaterThan(original.getTime());
    expect(sb.expiresAt!.getTime()).toBe(extended.getTime());
    const listed = (await Sandbox.list(daemon.opts)).find((s) => s.id === sb.id)!;
    expect(listed.expiresAt!.getTime()).toBe(extended.getTime());

    await sleep(Math.max(0, original.getTime() + 700 - Date.now()));
    expect(await sb.sh`echo alive`.text()).toBe("alive\n");
    expect(await listedIds()).toContain(sb.id);

    const p = await sb.spawn("sleep", { args: ["30"] });
    expect((await p.status).signal).toBe("SIGKILL");
    expect(Date.now()).toBeGreaterThanOrEqual(extended.getTime() - 50);
    await expectGone(sb.id);
  });

  it("extendTimeout turns a session sandbox into a timed one that outlives its creator", async () => {
    const sb = await create();
    expect(sb.expiresAt).toBeNull();
    const until = await sb.extendTimeout("30s");
    expect(Math.abs(until.getTime() - (Date.now() + 30_000))).toBeLessThan(1000);
    const id = sb.id;
    await sb.close();
    await sleep(2500);
    const again = await Sandbox.connect(id, daemon.opts);
    cleanup.push(again);
    expect(await again.sh`echo survived`.text()).toBe("survived\n");
    await again.kill();
  });

  it("rejects durations out of range with the field named", async () => {
    const sb = await create();
    const err = await sb.extendTimeout("200h").catch((e: unknown) => e);
    expect((err as Error).message).toBe("params.duration: would put the expiry more than 168h from now");
    const tooShort = await Sandbox.create({ ...daemon.opts, timeout: "500ms" }).catch((e: unknown) => e);
    expect((tooShort as Error).message).toBe("params.timeout: must be between 1s and 168h");
    await sb.kill();
  });
});

describe("session sandboxes", () => {
  it("die after their creator's connection closes (grace 1s)", async () => {
    const sb = await create();
    const id = sb.id;
    const marker = await sleeper(sb);
    await sb.close();
    // Within the grace period it is still there.
    expect(await listedIds()).toContain(id);
    await sleep(2500);
    await expectGone(id);
    expect(hostPidsWithArg(marker)).toEqual([]);
    expect(daemon.logs()).toContain(`sandbox ${id} stopping (session)`);
  });

  it("survive when another connection connects within the grace period (adoption)", async () => {
    const sb = await create();
    const id = sb.id;
    await sb.sh`echo kept > /home/user/kept`;
    await sb.close();
    await sleep(300);
    const adopter = await Sandbox.connect(id, daemon.opts);
    cleanup.push(adopter);
    await sleep(2500);
    expect(await listedIds()).toContain(id);
    expect(await adopter.sh`cat /home/user/kept`.text()).toBe("kept\n");
    // The adopter is now the session: when it leaves, the sandbox goes too.
    await adopter.close();
    await sleep(2500);
    await expectGone(id);
  });

  it("a second connection that merely attached does not keep it alive after the creator leaves", async () => {
    const sb = await create();
    const id = sb.id;
    const watcher = await Sandbox.connect(id, daemon.opts);
    cleanup.push(watcher);
    await sb.close();
    await sleep(2500);
    await expectGone(id);
    const err = await watcher.sh`true`.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxNotFoundError);
    await watcher.close();
  });
});

describe("env", () => {
  it("get/set/delete/toObject change what later spawns see", async () => {
    const sb = await create({ env: { FROM_CREATE: "c", KEEP: "k" } });
    expect(await sb.env.get("FROM_CREATE")).toBe("c");
    expect(await sb.env.get("MISSING")).toBeUndefined();
    // As Deno's: the whole environment a process starts with, the base (PATH, HOME...) included.
    const base = await sb.env.toObject();
    expect(base).toMatchObject({ FROM_CREATE: "c", KEEP: "k", HOME: "/home/sandbox", PATH: expect.stringContaining("/usr/bin") });
    expect(await sb.env.get("PATH")).toBe(base.PATH);
    const { FROM_CREATE: _c, KEEP: _k, ...daemonBase } = base;

    await sb.env.set("ADDED", "a b 'c' $d");
    expect(await sb.env.get("ADDED")).toBe("a b 'c' $d");
    await sb.env.set("KEEP", "changed");
    await sb.env.delete("FROM_CREATE");
    expect(await sb.env.get("FROM_CREATE")).toBeUndefined();
    expect(await sb.env.toObject()).toEqual({ ...daemonBase, KEEP: "changed", ADDED: "a b 'c' $d" });

    const out = await sb.sh`echo "[\${FROM_CREATE-unset}] [$KEEP] [$ADDED]"`.text();
    expect(out).toBe("[unset] [changed] [a b 'c' $d]\n");
    // A base variable can be deleted (and set again) like any other.
    await sb.env.delete("LANG");
    expect(await sb.env.get("LANG")).toBeUndefined();
    expect(await sb.sh`echo "\${LANG-unset}"`.text()).toBe("unset\n");
    await sb.env.set("LANG", "C");
    expect(await sb.sh`echo "$LANG"`.text()).toBe("C\n");
    // Per-spawn env still overrides the sandbox's, and clearEnv drops it.
    const p = await (await sb.spawn("printenv", { args: ["KEEP"], env: { KEEP: "per-spawn" } })).output();
    expect(p.stdoutText).toBe("per-spawn\n");
    const bare = await (await sb.spawn("/usr/bin/env", { clearEnv: true })).output();
    expect(bare.stdoutText).toBe("");
    // It belongs to the sandbox, not the connection.
    const other = await Sandbox.connect(sb.id, daemon.opts);
    expect(await other.env.get("ADDED")).toBe("a b 'c' $d");
    await other.env.delete("ADDED");
    expect(await sb.sh`echo "\${ADDED-gone}"`.text()).toBe("gone\n");
    await other.close();
    await sb.kill();
  });
});

describe("file operations keep the sandbox alive", () => {
  it("many writeFile/readFile round trips neither fail nor crash the supervisor", async () => {
    const sb = await create();
    const failures: string[] = [];
    for (let i = 0; i < 60; i++) {
      try {
        await sb.fs.writeTextFile(`/tmp/f${i}`, `data-${i}`);
        const back = await sb.fs.readTextFile(`/tmp/f${i}`);
        if (back !== `data-${i}`) failures.push(`f${i}: read back ${JSON.stringify(back)}`);
      } catch (err) {
        failures.push(`f${i}: ${(err as Error).message}`);
        if (failures.length > 3) break;
      }
    }
    expect(failures).toEqual([]);
    expect(await sb.sh`cat /tmp/f59`.text()).toBe("data-59");
    await sb.kill();
  });
});

describe("losing the daemon", () => {
  it("rejects every pending call with ConnectionError promptly, no hang", async () => {
    const own = await startDaemon();
    try {
      const sb = await Sandbox.create({ ...own.opts, timeout: "5m" });
      const sh = sb.sh`sleep 30`.result();
      sh.catch(() => {});
      const child = await sb.spawn("sleep", { args: ["31"] });
      const write = sb.fs.writeFile("/tmp/never-ends", new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) }));
      write.catch(() => {});
      // A read that is still going when the daemon dies: a big (sparse) file takes seconds to stream.
      await sb.sh`truncate -s 3G /tmp/big`;
      const read = sb.fs.readFile("/tmp/big", { maxBytes: 4 * 2 ** 30 });
      read.catch(() => {});
      await sleep(300);

      const killedAt = Date.now();
      await own.stop("SIGKILL");
      const settle = (p: Promise<unknown>) =>
        Promise.race([p.then(() => "resolved", (e: unknown) => e), sleep(3000).then(() => "still pending")]);
      const [shErr, statusErr, writeErr, readErr] = await Promise.all([sh, child.status, write, read].map(settle));
      expect(Date.now() - killedAt).toBeLessThan(2000);
      for (const err of [shErr, statusErr, writeErr, readErr]) {
        expect(err).toBeInstanceOf(ConnectionClosedError);
        expect(err).toBeInstanceOf(ConnectionError);
        expect((err as ConnectionClosedError).code).toBe("CONNECTION_CLOSED");
      }
      // New calls on the dead connection fail the same way, immediately.
      expect(await sb.env.get("HOME").catch((e: unknown) => e)).toBeInstanceOf(ConnectionError);
      expect(await sb.spawn("true").catch((e: unknown) => e)).toBeInstanceOf(ConnectionError);
      await sb.close();
    } finally {
      await own[Symbol.asyncDispose]();
    }
  });
});
