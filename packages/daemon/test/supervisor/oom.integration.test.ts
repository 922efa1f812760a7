/**
 * The supervisor survives its sandbox's OOM: user processes run at oom_score_adj 1000, above
 * the supervisor's own, and the supervisor itself stays small, so when a sandbox runs out of
 * memory the kernel kills user processes, never the supervisor. (With the 45 MB Node
 * supervisor, 60 small processes in a 256 MiB sandbox got it killed: "exited unexpectedly
 * (code 137)".)
 */
import { beforeAll, expect, it } from "vitest";
import { Sandbox, type ExitStatus } from "@sbx/client";
import { useDaemon } from "../helpers/fixtures.js";

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error("memory caps need cgroups: run as root (CI does)");
});
const daemon = useDaemon();

/** Allocates and touches about 8 MB (a bytes object is written as it is made), then lingers. */
const EIGHT_MB = "import time\nb = b'x' * (8 << 20)\ntime.sleep(3)\nprint(len(b))";

it("60 processes of ~8 MB each in a 256MiB sandbox: some are OOM-killed, the sandbox carries on", async () => {
  await using sb = await Sandbox.create({ ...daemon.opts, memory: "256MiB" });
  const exits: Array<Promise<ExitStatus>> = [];
  for (let i = 0; i < 60; i++) exits.push((await sb.spawn("python3", { args: ["-c", EIGHT_MB], stdout: "null", stderr: "null" })).status);
  const statuses = await Promise.all(exits);
  // Every process either finished or was killed; nothing here sends SIGKILL but the OOM killer.
  expect(statuses.filter((s) => !s.success && s.signal !== "SIGKILL")).toEqual([]);
  const killed = statuses.filter((s) => !s.success);
  expect(killed.length).toBeGreaterThan(0);
  expect(killed.length).toBeLessThan(60);
  for (const s of killed) expect(s).toMatchObject({ success: false, code: 137, signal: "SIGKILL" });
  // The daemon reads the cgroup's OOM counter at each exit, so a burst of kills between two
  // readings is put down to one of them: at least one says so.
  expect(killed.filter((s) => s.oom).length).toBeGreaterThan(0);
  // The supervisor was never the victim: the same sandbox answers.
  expect(await sb.sh`true`.result().then((r) => r.status.code)).toBe(0);
  expect(await sb.sh`cat /proc/1/comm`.text()).toBe("supervisor\n");
  expect((await Sandbox.list(daemon.opts)).map((s) => s.id)).toContain(sb.id);
  expect(daemon.logs()).not.toMatch(new RegExp(`sandbox ${sb.id} stopping \\(error`));
}, 120_000);
