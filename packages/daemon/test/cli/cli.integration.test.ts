import { execFile, spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, removeStateDir, startDaemon, type TestDaemon } from "../helpers/daemon.js";

const execFileP = promisify(execFile);
let daemon: TestDaemon;

beforeAll(async () => {
  daemon = await startDaemon();
});
afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
});

/** Runs the sbx CLI; resolves with its exit code and output instead of throwing. */
async function sbx(args: string[], input?: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token, ...extraEnv };
  if (input === undefined) {
    try {
      const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { env, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (err: any) {
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  }
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(input);
  });
}

describe("sbx CLI", () => {
  it("run streams output and exits with the command's code", async () => {
    const res = await sbx(["run", "--env", "GREETING=hi", "--", "bash", "-c", "echo $GREETING; echo oops >&2; exit 3"]);
    expect(res).toMatchObject({ code: 3, stdout: "hi\n", stderr: "oops\n" });
  });

  it("run streams live: the first line arrives before the command ends", async () => {
    const started = Date.now();
    const p = spawn(process.execPath, [CLI, "run", "--", "bash", "-c", "echo early; sleep 2; echo late"], { env: { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token } });
    const firstAt = await new Promise<number>((resolve) => p.stdout.once("data", () => resolve(Date.now())));
    const code = await new Promise((resolve) => p.on("exit", resolve));
    expect(code).toBe(0);
    expect(firstAt - started).toBeLessThan(Date.now() - started - 1500);
  });

  it("run forwards stdin and uploads files", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sbx-cli-"));
    writeFileSync(join(dir, "in.txt"), "uploaded\n");
    const res = await sbx(["run", "--upload", `${join(dir, "in.txt")}:/home/user/in.txt`, "--", "bash", "-c", "cat in.txt; tr a-z A-Z"], "from stdin\n");
    expect(res).toMatchObject({ code: 0, stdout: "uploaded\nFROM STDIN\n" });
  });

  it("run reports a missing command and bad options clearly", async () => {
    const missing = await sbx(["run", "--", "no-such-tool"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/command not found: 'no-such-tool'/);
    const bad = await sbx(["run", "--memory", "1KiB", "--", "true"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/params\.memory: must be between 128MiB/);
    const usage = await sbx(["run", "true"]);
    expect(usage.code).toBe(2);
  });

  it("run --secret takes the value from the named variable: the sandbox gets a placeholder, and its host is reachable", async () => {
    const value = "sk-cli-test-value-0123456789";
    const res = await sbx(["run", "--secret", "API_KEY=MY_KEY@api.example.com,*.example.org", "--", "bash", "-c", 'echo "$API_KEY"; curl -s -o /dev/null -w "%{http_code}\\n" -H "X: $API_KEY" http://api.example.com/'], undefined, { MY_KEY: value });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^SBX_SECRET_[0-9A-Za-z]{32}\n403\n$/);
    expect(res.stdout + res.stderr).not.toContain(value);
    expect(daemon.logs()).not.toContain(value);
    const unset = await sbx(["run", "--secret", "API_KEY=NOT_SET_ANYWHERE@api.example.com", "--", "true"]);
    expect(unset).toMatchObject({ code: 2, stderr: expect.stringContaining("--secret API_KEY: environment variable NOT_SET_ANYWHERE is not set") });
    const malformed = await sbx(["run", "--secret", `API_KEY=${value}`, "--", "true"]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain("--secret expects NAME=ENVVAR@HOST[,HOST]: the value is read from $ENVVAR");
    expect(malformed.stderr).not.toContain(value);
  });

  it("create, exec, ls, cp and kill work together", async () => {
    const created = await sbx(["create", "--label", "suite=cli", "--timeout", "2m"]);
    expect(created.code).toBe(0);
    const id = created.stdout.trim();
    expect(id).toMatch(/^sbx_[A-Za-z0-9]{24}$/);

    expect(await sbx(["exec", id, "--", "bash", "-c", "echo inside > /home/user/f.txt; exit 4"])).toMatchObject({ code: 4 });
    const ls = await sbx(["ls", "--json", "--label", "suite=cli"]);
    expect(JSON.parse(ls.stdout).map((s: { id: string }) => s.id)).toEqual([id]);
    expect((await sbx(["ls"])).stdout).toContain(id);

    const dir = mkdtempSync(join(tmpdir(), "sbx-cp-"));
    expect((await sbx(["cp", `${id}:/home/user/f.txt`, join(dir, "f.txt")])).code).toBe(0);
    expect(readFileSync(join(dir, "f.txt"), "utf8")).toBe("inside\n");
    mkdirSync(join(dir, "tree/sub"), { recursive: true });
    writeFileSync(join(dir, "tree/sub/g.txt"), "tree file");
    expect((await sbx(["cp", join(dir, "tree"), `${id}:/home/user/tree`])).code).toBe(0);
    expect((await sbx(["exec", id, "--", "cat", "/home/user/tree/sub/g.txt"])).stdout).toBe("tree file");

    expect((await sbx(["kill", id])).code).toBe(0);
    const gone = await sbx(["exec", id, "--", "true"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/no running sandbox/);
  });

  it("refuses a wrong token", async () => {
    const res = await execFileP(process.execPath, [CLI, "ls"], { env: { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: "not-the-token-at-all" } }).catch((e) => e);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/refused the token in SBX_TOKEN \(HTTP 401\)/);
  });

  it("--help after a command prints the usage, unless it is past -- (then it is the command's)", async () => {
    for (const cmd of ["daemon", "run", "exec"]) {
      const res = await sbx([cmd, "--help"]);
      expect(res.code).toBe(0);
      expect(res.stdout).toContain("sbx daemon [--listen 127.0.0.1:7070]");
      expect(res.stdout).toContain("[--secret NAME=ENVVAR@HOST[,HOST]]");
    }
    expect(await sbx(["run", "--", "printf", "%s\n", "--help"])).toMatchObject({ code: 0, stdout: "--help\n" });
  });

  it("daemon start|status|stop manage a background daemon through its state dir; --version", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "sbx-cli-daemon-"));
    const dirArgs = ["--state-dir", stateDir];
    try {
      expect(await sbx(["daemon", "status", ...dirArgs])).toMatchObject({ code: 3, stdout: `no sbx daemon runs for ${stateDir}\n` });
      const started = await sbx(["daemon", "start", "--listen", "127.0.0.1:0", "--warm-pool", "0", ...dirArgs]);
      expect(started.code).toBe(0);
      const url = /listening on (ws:\/\/127\.0\.0\.1:\d+)/.exec(started.stdout)![1]!;
      expect(started.stdout).toContain(`log: ${join(stateDir, "daemon.log")}`);
      const pid = Number(readFileSync(join(stateDir, "daemon.pid"), "utf8"));
      // A second start finds it instead of starting another.
      expect((await sbx(["daemon", "start", ...dirArgs])).stdout).toBe(`an sbx daemon already runs for ${stateDir} (pid ${pid}, ${url})\n`);
      // Started with SBX_TOKEN set (as sbx() does), the daemon takes that token.
      expect(await sbx(["run", "--url", url, "--", "echo", "served"])).toMatchObject({ code: 0, stdout: "served\n" });
      const status = await sbx(["daemon", "status", ...dirArgs]);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(new RegExp(`^sbx daemon \\S+ running \\(pid ${pid}, root mode, up \\d+s\\)\nlistening on ${url}\n`));
      expect(await sbx(["daemon", "stop", ...dirArgs])).toMatchObject({ code: 0, stdout: `stopped the sbx daemon (pid ${pid}) of ${stateDir}\n` });
      expect((await sbx(["daemon", "status", ...dirArgs])).code).toBe(3);
      expect(await sbx(["daemon", "stop", ...dirArgs])).toMatchObject({ code: 0, stdout: `no sbx daemon runs for ${stateDir}\n` });
      expect(await sbx(["daemon", "restart"])).toMatchObject({ code: 2, stderr: expect.stringContaining("unknown subcommand 'restart' (known: start, status, stop") });
      expect((await sbx(["--version"])).stdout).toMatch(/^sbx \d+\.\d+\.\d+\n$/);
    } finally {
      await sbx(["daemon", "stop", "--force", ...dirArgs]);
      await removeStateDir(stateDir);
    }
  });

  it("doctor reports this host ready", async () => {
    const res = await sbx(["doctor"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/ok\s+namespaced trial sandbox/);
  });
});
