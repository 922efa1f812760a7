/**
 * With no --url and no SBX_URL, a CLI command that can use a fresh daemon starts one at the
 * default URL and says so on stderr (it outlives the command); one that names a sandbox starts
 * nothing. Runs in a network namespace of its own: 127.0.0.1:7070 may be taken on the host.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";
import { CLI, removeStateDir } from "../helpers/daemon.js";

const run = promisify(execFile);
const stateDir = mkdtempSync(join(tmpdir(), "sbx-cli-local-"));
const netns = `sbx-cli-local-${process.pid}`;
execFileSync("ip", ["netns", "add", netns]);
execFileSync("ip", ["-n", netns, "link", "set", "lo", "up"]);

const env: NodeJS.ProcessEnv = { ...process.env, SBX_STATE_DIR: stateDir };
delete env.SBX_URL;
delete env.SBX_TOKEN;

/** The CLI inside the namespace; resolves with its exit code and output instead of throwing. */
async function sbx(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // nsenter, not `ip netns exec`: that one mounts a fresh /sys, which hides the cgroup file systems.
  return run("nsenter", [`--net=/run/netns/${netns}`, "--", process.execPath, CLI, ...args], { env, timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

afterAll(async () => {
  try {
    const pid = Number(readFileSync(join(stateDir, "daemon.pid"), "utf8"));
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 25));
  } catch {}
  execFileSync("ip", ["netns", "delete", netns]);
  await removeStateDir(stateDir);
});

const NOTICE = new RegExp(
  `^sbx: started an sbx daemon in the background \\(pid (\\d+), ws://127\\.0\\.0\\.1:7070, log ${stateDir}/daemon\\.log\\); it keeps running after this command: stop it with \`sbx daemon stop\`\\n$`,
);

it("commands that name a sandbox start no daemon; ls and run start one and say so, once", async () => {
  const exec = await sbx("exec", "sbx_aaaaaaaaaaaaaaaaaaaaaaaa", "--", "true");
  expect(exec).toMatchObject({
    code: 1,
    stderr: "sbx exec: no sbx daemon runs at ws://127.0.0.1:7070, so it has no sandboxes: start one with `sbx daemon start`, or point --url (or SBX_URL) at the daemon that has them\n",
  });
  expect(existsSync(join(stateDir, "daemon.pid"))).toBe(false);

  const ls = await sbx("ls");
  expect(ls.code).toBe(0);
  expect(ls.stdout).toBe("ID  STATUS  CREATED  EXPIRES  LABELS\n");
  const pid = Number(NOTICE.exec(ls.stderr)?.[1]);
  expect(pid).toBe(Number(readFileSync(join(stateDir, "daemon.pid"), "utf8")));

  // Reused from now on, silently.
  expect(await sbx("run", "--", "echo", "hi")).toMatchObject({ code: 0, stdout: "hi\n", stderr: "" });
  expect(await sbx("ls")).toMatchObject({ code: 0, stderr: "" });

  // The stop command it named works.
  expect(await sbx("daemon", "stop")).toMatchObject({ code: 0, stdout: `stopped the sbx daemon (pid ${pid}) of ${stateDir}\n` });
  const run2 = await sbx("run", "--", "echo", "again");
  expect(run2).toMatchObject({ code: 0, stdout: "again\n" });
  expect(run2.stderr).toMatch(NOTICE);
});
