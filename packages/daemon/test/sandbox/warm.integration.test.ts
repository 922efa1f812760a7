import { readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
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

afterAll(async () => {
  for (const sb of cleanup) await sb.kill().catch(() => {});
});

describe("storage stock", () => {
  let daemon: TestDaemon;
  const mnt = () => join(daemon.stateDir, "mnt");
  /** Mounted file systems no sandbox has claimed: still owned by root. */
  const unclaimed = () => mountsUnder(mnt()).filter((p) => statSync(p).uid === 0);

  beforeAll(async () => {
    daemon = await startDaemon({ config: { warmPool: 0, storageStock: 2 } });
  });
  afterAll(async () => {
    await daemon?.stop();
  });

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
