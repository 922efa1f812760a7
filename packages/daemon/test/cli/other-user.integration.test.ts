/**
 * Two users on one host: another user's daemon holds 127.0.0.1:7070, and this user's client
 * (default URL, token from its own token file) is refused. The SDK and the CLI must say whose
 * daemon that is and how to run one's own, rather than "set SBX_TOKEN". The other user's daemon
 * is a real one run as a system user made for this test, in a network namespace of the test's
 * own (7070 on the host may be anybody's).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CLI, removeStateDir, waitForListening } from "../helpers/daemon.js";
import { systemUser, type SystemUser } from "../helpers/users.js";

const run = promisify(execFile);
const dist = fileURLToPath(new URL("../../dist/", import.meta.url));
const clientEntry = fileURLToPath(new URL("../../../client/dist/index.js", import.meta.url));
const netns = `sbx-other-user-${process.pid}`;
let other: SystemUser;
let otherDir: string;
let otherDaemon: ChildProcess;
let otherLogs = "";
/** This (root) user's own state dir, with a token file of its own, as after its own daemon ran once. */
let myState: string;

const inNetns = (args: string[], env: NodeJS.ProcessEnv) =>
  run("nsenter", [`--net=/run/netns/${netns}`, "--", ...args], { env, timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err) => ({ code: err.code as number, stdout: err.stdout as string, stderr: err.stderr as string }),
  );

beforeAll(async () => {
  other = systemUser("sbx-otheruser");
  execFileSync("ip", ["netns", "add", netns]);
  execFileSync("ip", ["-n", netns, "link", "set", "lo", "up"]);
  // The other user's copy of the CLI, somewhere it can read, with a state dir it owns.
  otherDir = mkdtempSync(join(tmpdir(), "sbx-other-user-"));
  chmodSync(otherDir, 0o755);
  // dist/ whole, as a user would copy it: whatever the daemon needs beside its cli.js is there.
  cpSync(dist, otherDir, { recursive: true });
  mkdirSync(join(otherDir, "state"), { mode: 0o700 });
  chownSync(join(otherDir, "state"), other.uid, other.uid);
  // nsenter (as root) joins the namespace, setpriv then drops to the other user; both exec, so the pid is the daemon's.
  otherDaemon = spawn(
    "nsenter",
    [`--net=/run/netns/${netns}`, "--", "setpriv", `--reuid=${other.uid}`, `--regid=${other.uid}`, "--clear-groups", process.execPath, join(otherDir, "cli.js"), "daemon", "--listen", "127.0.0.1:7070", "--state-dir", join(otherDir, "state"), "--warm-pool", "0"],
    { cwd: otherDir, env: { PATH: process.env.PATH, HOME: otherDir }, stdio: ["ignore", "pipe", "pipe"] },
  );
  otherDaemon.stderr!.on("data", (d) => (otherLogs += d));
  await waitForListening(otherDaemon, () => otherLogs);
  myState = mkdtempSync(join(tmpdir(), "sbx-my-state-"));
  writeFileSync(join(myState, "token"), "my-own-token-from-my-own-daemon-0123\n", { mode: 0o600 });
});

afterAll(async () => {
  if (otherDaemon && otherDaemon.exitCode === null) {
    const exited = new Promise((r) => otherDaemon.once("exit", r));
    otherDaemon.kill("SIGTERM");
    await exited;
  }
  await inNetns([process.execPath, CLI, "daemon", "stop", "--state-dir", myState], process.env);
  execFileSync("ip", ["netns", "delete", netns]);
  if (otherDir) rmSync(otherDir, { recursive: true, force: true });
  if (myState) await removeStateDir(myState);
  await other?.remove();
});

/** My environment: no SBX_URL, no SBX_TOKEN, my own state dir (and so my token file). */
function myEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SBX_STATE_DIR: myState };
  delete env.SBX_URL;
  delete env.SBX_TOKEN;
  return env;
}

const hint = () =>
  `127.0.0.1:7070 belongs to another user's sbx daemon (sbx-otheruser, uid ${other.uid}, pid ${otherDaemon.pid}), which has its own token. ` +
  "Run your own on another port: `sbx daemon start --listen 127.0.0.1:7071`, then set SBX_URL=ws://127.0.0.1:7071";

it("the SDK says another user's daemon owns the port, and how to run one's own", async () => {
  const script = `
    import { Sandbox } from ${JSON.stringify(clientEntry)};
    const err = await Sandbox.list().catch((e) => e);
    console.log(JSON.stringify({ name: err.name, message: err.message, tokenSource: err.tokenSource, portOwner: err.portOwner }));`;
  const res = await inNetns([process.execPath, "--input-type=module", "-e", script], myEnv());
  expect(res.code).toBe(0);
  expect(JSON.parse(res.stdout)).toEqual({
    name: "InvalidTokenError", // an AuthError: the daemon refused the token (Deno's class name)
    message: `the daemon at ws://127.0.0.1:7070 refused the token from ${myState}/token (HTTP 401): ${hint()}`,
    tokenSource: "file",
    portOwner: { uid: other.uid, user: "sbx-otheruser", pid: otherDaemon.pid },
  });
});

it("the CLI says the same, and its advice works", async () => {
  expect(await inNetns([process.execPath, CLI, "ls"], myEnv())).toEqual({
    code: 1,
    stdout: "",
    stderr: `sbx ls: the daemon at ws://127.0.0.1:7070 refused the token from ${myState}/token (HTTP 401): ${hint()}\n`,
  });
  const started = await inNetns([process.execPath, CLI, "daemon", "start", "--listen", "127.0.0.1:7071", "--warm-pool", "0"], myEnv());
  expect(started).toMatchObject({ code: 0, stdout: expect.stringContaining("listening on ws://127.0.0.1:7071") });
  expect(await inNetns([process.execPath, CLI, "run", "--", "echo", "mine"], { ...myEnv(), SBX_URL: "ws://127.0.0.1:7071" })).toMatchObject({ code: 0, stdout: "mine\n" });
});

it("a token the user set on purpose gets no such guess", async () => {
  const res = await inNetns([process.execPath, CLI, "ls"], { ...myEnv(), SBX_TOKEN: "a-token-i-chose-myself" });
  expect(res.stderr).toBe(
    "sbx ls: the daemon at ws://127.0.0.1:7070 refused the token in SBX_TOKEN (HTTP 401): set SBX_TOKEN (or pass --token) to the token of the daemon at ws://127.0.0.1:7070 (its state dir's token file)\n",
  );
});
