import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";
import { removeStateDir } from "../../daemon/test/helpers/daemon.js";

const run = promisify(execFile);
const stateDir = mkdtempSync(join(tmpdir(), "sbx-embedded-"));
const clientEntry = fileURLToPath(new URL("../dist/index.js", import.meta.url));
const clientCjs = fileURLToPath(new URL("../dist/index.cjs", import.meta.url));
const daemonCli = fileURLToPath(new URL("../../daemon/dist/cli.js", import.meta.url));

// The client's default URL is 127.0.0.1:7070, where the user's own daemon (the README's quick
// start leaves one) may already listen. The test gets a loopback of its own: a fresh network
// namespace, as on a machine where nothing runs yet.
const netns = `sbx-embedded-${process.pid}`;
execFileSync("ip", ["netns", "add", netns]);
execFileSync("ip", ["-n", netns, "link", "set", "lo", "up"]);
// nsenter, not `ip netns exec`: that one mounts a fresh /sys, which hides the cgroup file systems.
const inNetns = (file: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string) => run("nsenter", [`--net=/run/netns/${netns}`, "--", file, ...args], { env, timeout: 60_000, cwd });

afterAll(async () => {
  try {
    const pid = Number(readFileSync(join(stateDir, "daemon.pid"), "utf8"));
    process.kill(pid, "SIGTERM");
    // The daemon kills its sandboxes and unmounts their storage before it exits.
    for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 25));
  } catch {}
  execFileSync("ip", ["netns", "delete", netns]);
  await removeStateDir(stateDir);
});

// Runs a fresh Node process with no url and no token, as a user's script would.
const script = `
import { Sandbox } from ${JSON.stringify(clientEntry)};
const sb = await Sandbox.create();
process.stdout.write(await sb.sh\`echo embedded \${sb.id}\`.text());
await sb.kill();
`;
// The same from CommonJS: there the client finds @sbx/daemon from its own location (import.meta.url shimmed for CJS).
const cjsScript = `
const { Sandbox } = require(${JSON.stringify(clientCjs)});
(async () => {
  const sb = await Sandbox.create();
  process.stdout.write(await sb.sh\`echo embedded \${sb.id}\`.text());
  await sb.kill();
})();
`;
const portOpen = `require("net").connect(7070, "127.0.0.1").on("connect", () => process.exit(0)).on("error", () => process.exit(1))`;

it("starts a local daemon at the default URL when none listens, then reuses it", async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, SBX_STATE_DIR: stateDir, SBX_DAEMON_BIN: daemonCli };
  delete env.SBX_URL;
  delete env.SBX_TOKEN;
  await expect(inNetns(process.execPath, ["-e", portOpen], env)).rejects.toThrow();
  // First from CommonJS, run outside the repository with neither SBX_DAEMON_BIN nor `sbx` on PATH:
  // only the client's own location can lead it to the daemon's CLI.
  const bare: NodeJS.ProcessEnv = { ...env, PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };
  delete bare.SBX_DAEMON_BIN;
  const first = await inNetns(process.execPath, ["-e", cjsScript], bare, tmpdir());
  expect(first.stdout).toMatch(/^embedded sbx_[A-Za-z0-9]{24}\n$/);
  const pid = Number(readFileSync(join(stateDir, "daemon.pid"), "utf8"));
  await inNetns(process.execPath, ["-e", portOpen], env);
  const second = await inNetns(process.execPath, ["--input-type=module", "-e", script], env);
  expect(second.stdout).toMatch(/^embedded sbx_/);
  expect(Number(readFileSync(join(stateDir, "daemon.pid"), "utf8"))).toBe(pid);
  expect(readFileSync(join(stateDir, "daemon.log"), "utf8")).toMatch(/listening on ws:\/\/127\.0\.0\.1:7070/);

  // `sbx daemon status|stop` find it through the state dir alone.
  const cli = (...args: string[]) => inNetns(process.execPath, [daemonCli, "daemon", ...args, "--state-dir", stateDir], env);
  const status = await cli("status");
  expect(status.stdout).toContain(`running (pid ${pid}, root mode`);
  expect(status.stdout).toContain("listening on ws://127.0.0.1:7070");
  const stop = await cli("stop");
  expect(stop.stdout).toBe(`stopped the sbx daemon (pid ${pid}) of ${stateDir}\n`);
  await expect(cli("status")).rejects.toMatchObject({ code: 3, stdout: `no sbx daemon runs for ${stateDir}\n` });
  await expect(inNetns(process.execPath, ["-e", portOpen], env)).rejects.toThrow();
});
