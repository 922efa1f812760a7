import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { useDaemon } from "../helpers/fixtures.js";
import { ok, runBash, waitFor } from "../helpers/bash.js";

/**
 * What is made ahead of demand (root mode): sandbox file systems formatted and mounted by the
 * storage stock, and whole sandboxes in the warm pool. Against real mounts and cgroups.
 */

const cleanup: Sandbox[] = [];

const mountsUnder = (dir: string) =>
  readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p.startsWith(`${dir}/`));

const count = (text: string, re: RegExp) => (text.match(re) ?? []).length;

afterAll(async () => {
  for (const sb of cleanup) await sb.kill().catch(() => {});
});

describe("storage stock", () => {
  const daemon = useDaemon({ config: { warmPool: 0, storageStock: 2 } });
  const mnt = () => join(daemon.stateDir, "mnt");
  /** Mounted file systems no sandbox has claimed: still owned by root. */
  const unclaimed = () => mountsUnder(mnt()).filter((p) => statSync(p).uid === 0);


  it("holds formatted, mounted file systems owned by root (mode 0700) before any create", async () => {
    const ready = await waitFor("two prepared file systems", () => unclaimed().length === 2 && unclaimed());
    for (const p of ready) {
      const st = statSync(p);
      expect([st.uid, st.gid, st.mode & 0o777]).toEqual([0, 0, 0o700]);
      expect(statSync(join(p, "home")).uid).toBe(0);
    }
  });

  it("a create claims a prepared one: the sandbox takes its name, its uid owns it, and the stock makes the next", async () => {
    const before = await waitFor("two prepared file systems", () => unclaimed().length === 2 && unclaimed());
    const sb = await Sandbox.create(daemon.opts);
    cleanup.push(sb);
    const root = join(mnt(), sb.id);
    expect(before).toContain(root);
    const uid = statSync(root).uid;
    expect(uid).not.toBe(0);
    expect([statSync(join(root, "home")).uid, statSync(join(root, "tmp")).uid]).toEqual([uid, uid]);
    expect(statSync(join(root, "tmp")).mode & 0o7777).toBe(0o1777);
    const out = ok(await runBash(sb, "echo hi > ~/f && echo t > /tmp/t && stat -c '%u %a' ~ /tmp && df -B1 --output=size ~ | tail -1"), "write");
    expect(out.trim().split("\n").slice(0, 2)).toEqual(["1000 755", "1000 1777"]);
    // The default 10 GiB file system, not a small one.
    expect(Number(out.trim().split("\n")[2])).toBeGreaterThan(9 * 2 ** 30);
    await waitFor("the stock to make another", () => unclaimed().length === 2);
    expect(unclaimed()).not.toContain(root);
    await sb.kill();
    await waitFor("the claimed file system to go", () => !mountsUnder(mnt()).includes(root));
  });

  it("a disk size the stock does not hold is made on demand, the stock untouched", async () => {
    const before = await waitFor("two prepared file systems", () => unclaimed().length === 2 && unclaimed());
    const sb = await Sandbox.create({ ...daemon.opts, disk: "64MiB" });
    cleanup.push(sb);
    expect(before).not.toContain(join(mnt(), sb.id));
    expect(unclaimed().sort()).toEqual([...before].sort());
    const size = Number(ok(await runBash(sb, "df -B1 --output=size ~ | tail -1"), "df").trim());
    expect(size).toBeLessThan(64 * 2 ** 20);
    await sb.kill();
  });

  it("a stopping daemon unmounts and deletes the file systems it prepared", async () => {
    await waitFor("two prepared file systems", () => unclaimed().length === 2);
    const names = unclaimed().map((p) => basename(p));
    await daemon.stop();
    expect(mountsUnder(mnt())).toEqual([]);
    for (const name of names) expect(() => statSync(join(mnt(), `${name}.img`))).toThrow();
  });
});

describe("warm pool", () => {
  const daemon = useDaemon({ config: { warmPool: 2, warmPoolMax: 4, storageStock: 0 } });
  const MIB = 2 ** 20;
  /** The daemon's cgroup dir for one sandbox in a v1 hierarchy (sbx-<12 hex of sha256(stateDir)>). */
  const cgroupFile = (controller: string, id: string, file: string) =>
    readFileSync(join("/sys/fs/cgroup", controller, `sbx-${createHash("sha256").update(daemon.stateDir).digest("hex").slice(0, 12)}`, id, file), "utf8").trim();
  /** Whether the daemon logged the create as served from the pool (the log line may trail the reply a little). */
  const fromPool = async (id: string) => {
    await waitFor(`the start of ${id} in the log`, () => daemon.logs().includes(`sandbox ${id} started`));
    return daemon.logs().includes(`sandbox ${id} started from the warm pool`);
  };
  /** Every live sandbox has its own mount (no storage stock here): those not created by a test are the pool's. */
  const live = () => mountsUnder(join(daemon.stateDir, "mnt")).length;
  /** Sandboxes the pool holds ready now: those it said were ready less those handed out. */
  const ready = () => count(daemon.logs(), / ready in the warm pool$/gm) - count(daemon.logs(), / started from the warm pool /g);


  it("a sandbox from the pool was created when its owner asked for it, not when the pool launched it", async () => {
    await waitFor("the pool to fill", () => ready() === 2, 15_000);
    await new Promise((r) => setTimeout(r, 1500)); // the pooled ones are at least this old
    const asked = Date.now();
    const sb = await Sandbox.create(daemon.opts);
    cleanup.push(sb);
    expect(await fromPool(sb.id)).toBe(true);
    expect(sb.createdAt.getTime()).toBeGreaterThanOrEqual(asked - 50);
    const listed = (await Sandbox.list(daemon.opts)).find((s) => s.id === sb.id)!;
    expect(listed.createdAt.getTime()).toBe(sb.createdAt.getTime());
    await sb.kill();
  });

  it("serves a create with other memory and CPU limits, holding it to them from the start", async () => {
    await waitFor("the pool to fill", () => ready() === 2, 15_000);
    const small = await Sandbox.create({ ...daemon.opts, memory: "256MiB", cpus: 0.5 });
    cleanup.push(small);
    const big = await Sandbox.create({ ...daemon.opts, memory: "2GiB", cpus: 1 });
    cleanup.push(big);
    expect([await fromPool(small.id), await fromPool(big.id)]).toEqual([true, true]);
    expect(cgroupFile("memory", small.id, "memory.limit_in_bytes")).toBe(String(256 * MIB));
    expect(cgroupFile("memory", small.id, "memory.memsw.limit_in_bytes")).toBe(String(256 * MIB));
    expect(cgroupFile("cpu", small.id, "cpu.cfs_quota_us")).toBe("50000");
    // Above the default (1280MiB): memory+swap must be raised before memory.
    expect(cgroupFile("memory", big.id, "memory.limit_in_bytes")).toBe(String(2048 * MIB));
    expect(cgroupFile("memory", big.id, "memory.memsw.limit_in_bytes")).toBe(String(2048 * MIB));
    // The cap holds: a 512 MiB hog in the 256MiB sandbox is OOM-killed.
    const hog = await (await small.spawn("python3", { args: ["-c", "b = bytearray(512 * 1024 * 1024); print('survived')"] })).output();
    expect(hog.stdoutText).not.toContain("survived");
    expect(hog.status.signal).toBe("SIGKILL");
    await small.kill();
    await big.kill();
  });

  it("a kind it lacks (another disk size) is made on demand; asked for again, it is pooled", async () => {
    const miss = async () => {
      const sb = await Sandbox.create({ ...daemon.opts, disk: "64MiB" });
      cleanup.push(sb);
      expect(await fromPool(sb.id)).toBe(false);
      await sb.kill();
    };
    await miss();
    await new Promise((r) => setTimeout(r, 500));
    expect(ready()).toBe(2); // one create of a rare kind starts nothing
    await miss();
    // Two misses within 2 s of each other: a burst of 2, so up to two of that kind are kept.
    await waitFor("a 64MiB sandbox in the pool", () => ready() >= 3, 15_000);
    const second = await Sandbox.create({ ...daemon.opts, disk: "64MiB", memory: "300MiB" });
    cleanup.push(second);
    expect(await fromPool(second.id)).toBe(true);
    expect(cgroupFile("memory", second.id, "memory.limit_in_bytes")).toBe(String(300 * MIB));
    expect(Number(ok(await runBash(second, "df -B1 --output=size ~ | tail -1"), "df").trim())).toBeLessThan(64 * MIB);
    await second.kill();
  });
});

describe("warm pool under a burst", () => {
  const daemon = useDaemon({ config: { warmPool: 1, warmPoolMax: 3, storageStock: 0 } });
  const fromPool = async (id: string) => {
    await waitFor(`the start of ${id} in the log`, () => daemon.logs().includes(`sandbox ${id} started`));
    return daemon.logs().includes(`sandbox ${id} started from the warm pool`);
  };
  const live = () => mountsUnder(join(daemon.stateDir, "mnt")).length;
  const ready = () => count(daemon.logs(), / ready in the warm pool$/gm) - count(daemon.logs(), / started from the warm pool /g);


  it("grows to a burst it could not serve, up to warmPoolMax, and then serves that many of the next burst", async () => {
    await waitFor("the pool to fill", () => ready() === 1, 15_000);
    const burst = async () => {
      const sbs = await Promise.all(Array.from({ length: 4 }, () => Sandbox.create(daemon.opts)));
      cleanup.push(...sbs);
      const pooled = (await Promise.all(sbs.map((sb) => fromPool(sb.id)))).filter(Boolean).length;
      await Promise.all(sbs.map((sb) => sb.kill()));
      return pooled;
    };
    expect(await burst()).toBeLessThanOrEqual(1);
    // The burst was 4; warmPoolMax bounds the pool at 3.
    await waitFor("the pool to grow", () => ready() === 3, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    expect([ready(), live()]).toEqual([3, 3]);
    expect(await burst()).toBe(3);
  });

});
