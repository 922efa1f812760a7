import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { CLI, startDaemon, type TestDaemon } from "../helpers/daemon.js";

const execFileP = promisify(execFile);
let daemon: TestDaemon;
let sb: Sandbox;

beforeAll(async () => {
  daemon = await startDaemon();
  sb = await Sandbox.create({ ...daemon.opts, timeout: "5m" });
});
afterAll(async () => {
  await sb?.kill();
  await daemon?.[Symbol.asyncDispose]();
});

/**
 * Drives `sbx shell ID` on a real terminal (a host pty from Python's pty module): types into it,
 * resizes the window the way a terminal emulator does (TIOCSWINSZ, which sends SIGWINCH), and
 * reports what it saw and the exit status.
 */
const DRIVER = String.raw`
import fcntl, json, os, pty, select, struct, sys, termios, time
node, cli, sid = sys.argv[1:4]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(node, [node, cli, "shell", sid])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
seen = b""
def until(pat, timeout=30):
    global seen
    end = time.time() + timeout
    while pat not in seen:
        if time.time() > end:
            raise SystemExit("timed out waiting for %r; saw %r" % (pat, seen[-400:]))
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        try:
            seen += os.read(fd, 4096)
        except OSError:
            raise SystemExit("terminal closed waiting for %r; saw %r" % (pat, seen[-400:]))
def say(s):
    os.write(fd, s)
until(b"$ ")
say(b"stty size; tty\n")
until(b"30 100")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
time.sleep(0.5)
say(b"stty size\n")
until(b"50 160")
say(b"sleep 100\n")
time.sleep(0.5)
say(b"\x03")
until(b"^C")
say(b"echo after-sleep=$?\n")
until(b"after-sleep=130")
say(b"exit 7\n")
_, status = os.waitpid(pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "seen": seen.decode("utf-8", "replace")}))
`;

describe("sbx shell", () => {
  it("gives a real terminal: the window's size, resize on SIGWINCH, Ctrl-C to the command inside, its exit status", async () => {
    const env = { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token, TERM: "xterm" };
    const { stdout } = await execFileP("python3", ["-c", DRIVER, process.execPath, CLI, sb.id], { env, timeout: 50_000 });
    const { code, seen } = JSON.parse(stdout) as { code: number; seen: string };
    expect(seen).toMatch(/\/dev\/pts\/\d+/);
    expect(seen).toContain("30 100");
    expect(seen).toContain("50 160");
    // Ctrl-C reached the sleep inside (raw mode here), not the CLI: the shell went on.
    expect(seen).toContain("after-sleep=130");
    expect(code).toBe(7);
  });

  it("runs a given command, and without a terminal still works (no raw mode)", async () => {
    const env = { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token };
    const { stdout } = await execFileP(process.execPath, [CLI, "shell", sb.id, "--", "bash", "-c", "stty size; test -t 0 && echo tty"], { env, timeout: 60_000 });
    expect(stdout).toBe("24 80\r\ntty\r\n");
    const failed = await execFileP(process.execPath, [CLI, "shell", sb.id, "--", "bash", "-c", "exit 3"], { env }).catch((e: { code: number }) => e);
    expect((failed as { code: number }).code).toBe(3);
  });

  it("names a sandbox that does not exist, and wants exactly one id", async () => {
    const env = { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token };
    const missing = await execFileP(process.execPath, [CLI, "shell", "sbx_doesnotexist00000000000"], { env }).catch((e: { code: number; stderr: string }) => e);
    expect((missing as { stderr: string }).stderr).toMatch(/sbx shell: .*no running sandbox/);
    const usage = await execFileP(process.execPath, [CLI, "shell"], { env }).catch((e: { code: number; stderr: string }) => e);
    expect((usage as { code: number; stderr: string }).stderr).toMatch(/usage: sbx shell ID/);
  });
});
