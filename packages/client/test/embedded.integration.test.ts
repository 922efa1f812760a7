import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";
import { removeStateDir } from "../../daemon/test/helpers/daemon.js";

const run = promisify(execFile);
const stateDir = mkdtempSync(join(tmpdir(), "sbx-embedded-"));
const clientEntry = fileURLToPath(new URL("../dist/index.js", import.meta.url));
const daemonCli = fileURLToPath(new URL("../../daemon/dist/cli.js", import.meta.url));

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port }, () => (s.destroy(), resolve(true)));
    s.on("error", () => resolve(false));
  });

afterAll(async () => {
  try {
    const pid = Number(readFileSync(join(stateDir, "daemon.pid"), "utf8"));
    process.kill(pid, "SIGTERM");
    // The daemon kills its sandboxes and unmounts their storage before it exits.
    for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 25));
  } catch {}
  await removeStateDir(stateDir);
});

// Runs a fresh Node process with no url and no token, as a user's script would.
const script = `
import { Sandbox } from ${JSON.stringify(clientEntry)};
const sb = await Sandbox.create();
console.log(await sb.sh\`echo embedded \${sb.id}\`.text());
await sb.kill();
`;

it("starts a local daemon when none listens, then reuses it", async () => {
  if (await portOpen(7070)) throw new Error("something already listens on 127.0.0.1:7070; stop it to run this test (it checks the client's default URL)");
  const env: NodeJS.ProcessEnv = { ...process.env, SBX_STATE_DIR: stateDir, SBX_DAEMON_BIN: daemonCli };
  delete env.SBX_URL;
  delete env.SBX_TOKEN;
  const first = await run(process.execPath, ["--input-type=module", "-e", script], { env, timeout: 60_000 });
  expect(first.stdout).toMatch(/^embedded sbx_[A-Za-z0-9]{24}\n$/);
  const pid = Number(readFileSync(join(stateDir, "daemon.pid"), "utf8"));
  expect(await portOpen(7070)).toBe(true);
  const second = await run(process.execPath, ["--input-type=module", "-e", script], { env, timeout: 60_000 });
  expect(second.stdout).toMatch(/^embedded sbx_/);
  expect(Number(readFileSync(join(stateDir, "daemon.pid"), "utf8"))).toBe(pid);
  expect(readFileSync(join(stateDir, "daemon.log"), "utf8")).toMatch(/listening on ws:\/\/127\.0\.0\.1:7070/);
});
