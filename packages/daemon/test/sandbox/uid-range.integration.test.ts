import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { claimUidRange, UidRangeError } from "../../src/sandbox/uid-range.js";
import { startDaemon } from "../helpers/daemon.js";

/** Host uids are global: no two live daemons may hand out the same ones. */
describe("sandbox uid ranges", () => {
  it("two daemons get disjoint ranges; an explicit uidBase inside another's range is refused, naming it", async () => {
    await using a = await startDaemon();
    await using b = await startDaemon();
    const [a0, a1] = a.uids!;
    const [b0, b1] = b.uids!;
    expect(a1 - a0 + 1).toBe(65536);
    expect(b1 < a0 || b0 > a1).toBe(true);
    const err = await startDaemon({ config: { uidBase: a0 + 100 } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(`overlap ${a0}..${a1}, which the sbx daemon pid ${a.proc.pid} (state dir ${a.stateDir}) uses`);
  });

  it("claims of dead daemons and unreadable claim files are stale; the lowest free block is taken", () => {
    const dir = mkdtempSync(join(tmpdir(), "sbx-uids-"));
    // A process that has exited: its pid's start time no longer matches (or the pid is gone).
    const dead = spawnSync("true").pid!;
    writeFileSync(join(dir, "200000-265535"), JSON.stringify({ pid: dead, start: "1", stateDir: "/gone" }));
    writeFileSync(join(dir, "265536-331071"), "not json");
    const mine = claimUidRange({ base: null, count: 65536, stateDir: "/s1", dir });
    expect(mine.base).toBe(200000);
    expect(readdirSync(dir).sort()).toEqual(["200000-265535"]);
    // Ours is live: the next automatic claim skips it, an explicit overlap is refused.
    const next = claimUidRange({ base: null, count: 1000, stateDir: "/s2", dir });
    expect(next.base).toBe(266_000); // the first multiple of 1000 above 200000 past the first claim
    expect(() => claimUidRange({ base: 265000, count: 10, stateDir: "/s3", dir })).toThrow(UidRangeError);
    mine.release();
    next.release();
    expect(readdirSync(dir)).toEqual([]);
  });
});
