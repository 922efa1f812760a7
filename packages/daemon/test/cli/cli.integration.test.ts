import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { CLI, removeStateDir } from "../helpers/daemon.js";
import { useDaemon } from "../helpers/fixtures.js";

const execFileP = promisify(execFile);
const daemon = useDaemon();

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
    // The daemon's field names come back as the flags the user typed.
    const bad = await sbx(["run", "--memory", "1KiB", "--", "true"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^sbx run: --memory: must be between 128MiB and this host's \d+MiB\n$/);
    expect(await sbx(["run", "--allow-net", "*", "--", "true"])).toMatchObject({ code: 1, stderr: 'sbx run: --allow-net: allowNet entry "*" would allow every host; name the hosts the sandbox needs\n' });
    expect(await sbx(["run", "--secret", "K=HOME@api.example.com", "--", "true"], undefined, { HOME: "short" })).toMatchObject({ code: 1, stderr: expect.stringMatching(/^sbx run: --secret K: value must be at least 8 characters/) });
    expect(await sbx(["run", "--memory", "lots", "--", "true"])).toMatchObject({ code: 1, stderr: 'sbx run: --memory: must be a non-negative number of bytes or a size such as "512MiB", "1.5GiB" or "10GB"\n' });
  });

  it("run and exec say to put the command after -- when it comes first", async () => {
    expect(await sbx(["run", "true"])).toMatchObject({ code: 2, stdout: "", stderr: "sbx run: put the command after --: sbx run [options] -- CMD [ARGS...] (got 'true' before any --)\n" });
    // `ls -la` would otherwise be reported as an unknown option -l.
    expect(await sbx(["run", "--memory", "1G", "ls", "-la"])).toMatchObject({ code: 2, stderr: "sbx run: put the command after --: sbx run [options] -- CMD [ARGS...] (got 'ls' before any --)\n" });
    expect(await sbx(["exec", "sbx_whatever", "uname", "-a"])).toMatchObject({ code: 2, stderr: "sbx exec: put the command after --: sbx exec ID -- CMD [ARGS...] (got 'uname' before any --)\n" });
    expect(await sbx(["run", "--"])).toMatchObject({ code: 2, stderr: "sbx run: no command given after --: sbx run [options] -- CMD [ARGS...]\n" });
  });

  it("accepts sizes and durations in their common spellings", async () => {
    for (const [memory, disk, timeout] of [["1g", "1gb", "1h30m"], ["1GB", "1.5GiB", "90s"], ["1536MiB", "2G", "2m30s"]]) {
      expect(await sbx(["run", "--memory", memory!, "--disk", disk!, "--timeout", timeout!, "--", "echo", "ok"])).toMatchObject({ code: 0, stdout: "ok\n" });
    }
    const created = await sbx(["create", "--timeout", "1h30m"]);
    expect(created.code).toBe(0);
    const listed = JSON.parse((await sbx(["ls", "--json"])).stdout).find((s: { id: string }) => s.id === created.stdout.trim());
    // (createdAt is when the sandbox started, a moment before the timeout was set)
    expect(Date.parse(listed.expiresAt) - Date.parse(listed.createdAt)).toBeGreaterThanOrEqual(90 * 60_000);
    expect(Date.parse(listed.expiresAt) - Date.now()).toBeGreaterThan(89 * 60_000);
    expect(Date.parse(listed.expiresAt) - Date.parse(listed.createdAt)).toBeLessThan(91 * 60_000);
    expect((await sbx(["kill", created.stdout.trim()])).code).toBe(0);
  });

  it("create refuses --timeout session: the sandbox would die as the command exits", async () => {
    const before = (await sbx(["ls", "--json"])).stdout;
    const res = await sbx(["create", "--timeout", "session"]);
    expect(res).toMatchObject({ code: 2, stdout: "" });
    expect(res.stderr).toBe("sbx create: --timeout session would end the sandbox seconds after `sbx create` exits; give a duration such as 30m (the default) or 2h, and `sbx kill ID` when done (sbx run keeps a session sandbox for as long as its command runs)\n");
    expect((await sbx(["ls", "--json"])).stdout).toBe(before);
  });

  it("a bad SBX_URL or --url is one line saying what a URL looks like", async () => {
    expect(await sbx(["ls"], undefined, { SBX_URL: "127.0.0.1:7070" })).toMatchObject({ code: 1, stderr: "sbx ls: SBX_URL must be a ws:// or wss:// URL, got '127.0.0.1:7070' (did you mean ws://127.0.0.1:7070?)\n" });
    expect(await sbx(["ls", "--url", "localhost:7070"])).toMatchObject({ code: 2, stderr: "sbx ls: --url must be a ws:// or wss:// URL, got 'localhost:7070' (did you mean ws://localhost:7070?)\n" });
    expect(await sbx(["ls"], undefined, { SBX_URL: "http://127.0.0.1:7070" })).toMatchObject({ code: 1, stderr: "sbx ls: SBX_URL must be a ws:// or wss:// URL, got 'http://127.0.0.1:7070'\n" });
  });

  it("an unexpected failure is one line; SBX_DEBUG=1 adds the stack", async () => {
    const created = await sbx(["create", "--timeout", "2m"]);
    const id = created.stdout.trim();
    try {
      expect((await sbx(["exec", id, "--", "bash", "-c", "head -c 100000 /dev/zero > big"])).code).toBe(0);
      // /dev/full answers every write with ENOSPC: a failure no sbx code foresees.
      const plain = await sbx(["cp", `${id}:/home/user/big`, "/dev/full"]);
      expect(plain).toMatchObject({ code: 1, stderr: "sbx cp: ENOSPC: no space left on device, write (SBX_DEBUG=1 prints the stack)\n" });
      const debug = await sbx(["cp", `${id}:/home/user/big`, "/dev/full"], undefined, { SBX_DEBUG: "1" });
      expect(debug.code).toBe(1);
      // (a system error's stack is its message alone: the write failed inside libuv, not in JavaScript)
      expect(debug.stderr).toMatch(/^sbx cp: ENOSPC: no space left on device, write \(SBX_DEBUG=1 prints the stack\)\nError: ENOSPC: no space left on device, write\n/);
    } finally {
      await sbx(["kill", id]);
    }
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

  it("refuses a wrong token, naming where it came from and the --token flag", async () => {
    const env = { SBX_TOKEN: "not-the-token-at-all" };
    expect(await sbx(["ls"], undefined, env)).toMatchObject({
      code: 1,
      stderr: `sbx ls: the daemon at ${daemon.url} refused the token in SBX_TOKEN (HTTP 401): set SBX_TOKEN (or pass --token) to the token of the daemon at ${daemon.url} (its state dir's token file)\n`,
    });
    expect(await sbx(["ls", "--token", "not-the-token-either"])).toMatchObject({
      code: 1,
      stderr: `sbx ls: the daemon at ${daemon.url} refused the token given with --token (HTTP 401): pass the token of the daemon at ${daemon.url} (its state dir's token file)\n`,
    });
    // From a token file that belongs to another daemon (the state dir's, as with no SBX_TOKEN at all).
    const state = mkdtempSync(join(tmpdir(), "sbx-cli-token-"));
    writeFileSync(join(state, "token"), "a-token-of-some-other-daemon\n");
    try {
      expect(await sbx(["ls"], undefined, { SBX_TOKEN: "", SBX_STATE_DIR: state })).toMatchObject({
        code: 1,
        stderr: `sbx ls: the daemon at ${daemon.url} refused the token from ${join(state, "token")} (HTTP 401): that file belongs to another daemon; pass --token or set SBX_TOKEN to the token of the daemon at ${daemon.url}\n`,
      });
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  it("cp copies into an existing directory or a DEST ending in /, both ways, like cp", async () => {
    const id = (await sbx(["create", "--timeout", "2m"])).stdout.trim();
    const dir = mkdtempSync(join(tmpdir(), "sbx-cp-into-"));
    try {
      writeFileSync(join(dir, "a.txt"), "local a\n");
      mkdirSync(join(dir, "tree"));
      writeFileSync(join(dir, "tree", "t.txt"), "tree t\n");
      expect((await sbx(["exec", id, "--", "mkdir", "-p", "/home/user/in"])).code).toBe(0);
      expect((await sbx(["cp", join(dir, "a.txt"), `${id}:/home/user/in`])).code).toBe(0);
      expect((await sbx(["cp", join(dir, "a.txt"), `${id}:/home/user/in/`])).code).toBe(0);
      expect((await sbx(["cp", join(dir, "tree"), `${id}:/home/user/in`])).code).toBe(0);
      expect((await sbx(["exec", id, "--", "bash", "-c", "cd /home/user/in && cat a.txt tree/t.txt && ls"])).stdout).toBe("local a\ntree t\na.txt\ntree\n");
      // A trailing / that names no directory is refused, as cp does.
      expect(await sbx(["cp", join(dir, "a.txt"), `${id}:/home/user/nowhere/`])).toMatchObject({ code: 1, stderr: `sbx cp: ${id}:/home/user/nowhere/: no such directory in the sandbox\n` });

      const out = join(dir, "out");
      mkdirSync(out);
      expect((await sbx(["cp", `${id}:/home/user/in/a.txt`, out])).code).toBe(0);
      expect((await sbx(["cp", `${id}:/home/user/in/tree`, `${out}/`])).code).toBe(0);
      expect(readFileSync(join(out, "a.txt"), "utf8")).toBe("local a\n");
      expect(readFileSync(join(out, "tree", "t.txt"), "utf8")).toBe("tree t\n");
      expect(await sbx(["cp", `${id}:/home/user/in/a.txt`, join(dir, "missing", "a.txt")])).toMatchObject({ code: 1, stderr: `sbx cp: ${join(dir, "missing")}: no such directory\n` });
      // --max-bytes bounds a download (the SDK's maxBytes, 10 GiB unless given), in the flag's words.
      // (A path that says maxBytes keeps its name.)
      expect((await sbx(["exec", id, "--", "cp", "/home/user/in/a.txt", "/home/user/in/maxBytes.txt"])).code).toBe(0);
      expect(await sbx(["cp", "--max-bytes", "4", `${id}:/home/user/in/maxBytes.txt`, join(dir, "small.txt")])).toMatchObject({
        code: 1,
        stderr: `sbx cp: downloading /home/user/in/maxBytes.txt would write more than --max-bytes (4 bytes): /home/user/in/maxBytes.txt is 8 bytes; pass a larger --max-bytes to download it\n`,
      });
      expect(existsSync(join(dir, "small.txt"))).toBe(false);
      expect((await sbx(["cp", "--max-bytes", "1KiB", `${id}:/home/user/in/tree`, join(dir, "t2")])).code).toBe(0);
      expect(readFileSync(join(dir, "t2", "t.txt"), "utf8")).toBe("tree t\n");
      expect(await sbx(["cp", "--max-bytes", "lots", `${id}:/home/user/in/a.txt`, out])).toMatchObject({ code: 2, stderr: `sbx cp: --max-bytes: 'lots' is not a size such as "512MiB", "1.5GiB" or "10GB"\n` });
      expect(await sbx(["cp", "--max-bytes", "1KiB", join(dir, "a.txt"), `${id}:/home/user/in`])).toMatchObject({ code: 2, stderr: "sbx cp: --max-bytes bounds a download (SRC ID:/path); an upload is bounded by the sandbox's disk\n" });

      // Missing paths are one line naming them, on either side.
      expect(await sbx(["cp", join(dir, "nope.txt"), `${id}:/home/user/`])).toMatchObject({ code: 1, stderr: `sbx cp: ${join(dir, "nope.txt")}: no such file or directory\n` });
      expect(await sbx(["cp", `${id}:/home/user/nope.txt`, out])).toMatchObject({ code: 1, stderr: `sbx cp: ${id}:/home/user/nope.txt: no such file or directory in the sandbox\n` });
      expect(await sbx(["run", "--upload", `${join(dir, "nope.txt")}:/home/user/x`, "--", "true"])).toMatchObject({ code: 1, stderr: `sbx run: --upload ${join(dir, "nope.txt")}: no such file or directory\n` });
      // --upload into a directory, too.
      expect(await sbx(["run", "--upload", `${join(dir, "a.txt")}:/tmp/`, "--", "cat", "/tmp/a.txt"])).toMatchObject({ code: 0, stdout: "local a\n" });
      expect(await sbx(["cp", "a", "b"])).toMatchObject({ code: 2, stderr: "sbx cp: exactly one of SRC and DEST must be ID:/path (like sbx_abc…:/home/sandbox/file)\n" });
    } finally {
      await sbx(["kill", id]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("create takes --upload like run, and leaves no sandbox when an upload fails", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sbx-create-upload-"));
    writeFileSync(join(dir, "in.txt"), "for later\n");
    const before = JSON.parse((await sbx(["ls", "--json"])).stdout).length;
    try {
      const id = (await sbx(["create", "--timeout", "2m", "--upload", `${join(dir, "in.txt")}:/home/user/`])).stdout.trim();
      expect(await sbx(["exec", id, "--", "cat", "in.txt"])).toMatchObject({ code: 0, stdout: "for later\n" });
      expect((await sbx(["kill", id])).code).toBe(0);
      // The sandbox has no /nowhere/ directory: the upload fails after the create.
      expect(await sbx(["create", "--upload", `${join(dir, "in.txt")}:/nowhere/`])).toMatchObject({ code: 1, stdout: "", stderr: "sbx create: /nowhere/: no such directory in the sandbox\n" });
      expect(JSON.parse((await sbx(["ls", "--json"])).stdout)).toHaveLength(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("logs shows the egress decisions with or without --net", async () => {
    const id = (await sbx(["create", "--timeout", "2m", "--allow-net", "example.com"])).stdout.trim();
    try {
      await sbx(["exec", id, "--", "curl", "-s", "-o", "/dev/null", "http://blocked.example.org/"]);
      const plain = await sbx(["logs", id]);
      expect(plain.code).toBe(0);
      expect(plain.stdout).toMatch(/BLOCKED {2}GET blocked\.example\.org:80 {2}\(/);
      expect((await sbx(["logs", id, "--net"])).stdout).toBe(plain.stdout);
      expect(JSON.parse((await sbx(["logs", "--json", id])).stdout)).toHaveLength(1);
    } finally {
      await sbx(["kill", id]);
    }
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

  it("doctor reports this host ready, then checks the daemon end to end (process, files, network shut, escapes refused, kill and usage)", async () => {
    const res = await sbx(["doctor"]);
    expect(res.code, res.stdout).toBe(0);
    expect(res.stdout).toMatch(/ok\s+namespaced trial sandbox/);
    for (const step of ["create a sandbox", "process", "files", "no network without allowNet", "seccomp and namespaces", "kill and usage"]) {
      expect(res.stdout).toMatch(new RegExp(`^ok +daemon: ${step}: `, "m"));
    }
    expect(res.stdout).toContain("example.com refused by the egress proxy (403)");
    // Its sandbox is gone.
    expect((await sbx(["ls", "--label", "purpose=sbx-doctor"])).stdout).not.toMatch(/sbx_/);
  });

  it("doctor fails, saying why, when the daemon it is pointed at cannot be used", async () => {
    const wrongToken = await sbx(["doctor"], undefined, { SBX_TOKEN: "not-the-token-0123456789" });
    expect(wrongToken.code).toBe(1);
    expect(wrongToken.stdout).toMatch(/^FAIL daemon: create a sandbox: .*(401|token)/im);
    const nobody = await sbx(["doctor", "--url", "ws://127.0.0.1:9"]);
    expect(nobody.code).toBe(1);
    expect(nobody.stdout).toMatch(/^FAIL daemon: create a sandbox: /m);
    const hostOnly = await sbx(["doctor", "--host-only", "--url", "ws://127.0.0.1:9"]);
    expect(hostOnly.code).toBe(0);
    expect(hostOnly.stdout).not.toContain("daemon:");
  });
});
