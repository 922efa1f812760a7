import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError, RpcError, Sandbox, type ChildProcess } from "@sbx/client";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";

let daemon: TestDaemon;
let sb: Sandbox;

beforeAll(async () => {
  daemon = await startDaemon();
  sb = await Sandbox.create(daemon.opts);
});
afterAll(async () => {
  await sb?.kill();
  await daemon?.[Symbol.asyncDispose]();
});

/** Reads the terminal's output until `pattern` shows up in it (or the process ends). */
async function until(reader: ReadableStreamDefaultReader<Uint8Array>, seen: { text: string }, pattern: RegExp): Promise<RegExpMatchArray> {
  const decoder = new TextDecoder();
  for (;;) {
    const m = seen.text.match(pattern);
    if (m) return m;
    const { value, done } = await reader.read();
    if (done) throw new Error(`the terminal closed before ${pattern} showed up; it said: ${JSON.stringify(seen.text)}`);
    seen.text += decoder.decode(value, { stream: true });
  }
}

async function write(p: ChildProcess, s: string): Promise<void> {
  const w = p.stdin!.getWriter();
  await w.write(new TextEncoder().encode(s));
  w.releaseLock();
}

describe("spawn with a pty", () => {
  it("gives the process a terminal of the size asked for, as its controlling tty, stderr merged", async () => {
    const p = await sb.spawn("bash", { args: ["-c", "tty; stty size; test -t 0 && test -t 1 && test -t 2 && echo all-ttys; echo to-stderr >&2; ps -o tty= -p $$"], pty: true, cols: 132, rows: 43 });
    expect(p.stderr).toBeNull();
    const out = await p.output();
    expect(out.status.code).toBe(0);
    const lines = out.stdoutText!.split("\r\n");
    expect(lines[0]).toMatch(/^\/dev\/pts\/\d+$/);
    expect(lines[1]).toBe("43 132");
    expect(lines[2]).toBe("all-ttys");
    expect(lines[3]).toBe("to-stderr");
    // The session's controlling terminal: the pty, not "?".
    expect(lines[4]).toMatch(/^pts\/\d+/);
  });

  it("defaults to 80x24 and runs an interactive shell: input echoed, job control, exit status", async () => {
    const p = await sb.spawn("bash", { args: ["--norc", "-i"], pty: true, stdin: "piped", env: { PS1: "sbx$ " } });
    const reader = p.stdout!.getReader();
    const seen = { text: "" };
    await until(reader, seen, /sbx\$ $/);
    await write(p, "stty size; echo $((6*7))\n");
    await until(reader, seen, /24 80\r\n42\r\n/);
    await write(p, "exit 5\n");
    while (!(await reader.read()).done);
    expect((await p.status).code).toBe(5);
  });

  it("resize changes the size and sends SIGWINCH to the foreground process", async () => {
    const p = await sb.spawn("bash", { args: ["-c", "trap 'echo winch $(stty size)' WINCH; echo ready; while :; do sleep 0.05; done"], pty: true });
    const reader = p.stdout!.getReader();
    const seen = { text: "" };
    await until(reader, seen, /ready\r\n/);
    await p.resize(100, 30);
    await until(reader, seen, /winch 30 100\r\n/);
    await p.kill("SIGKILL");
    expect((await p.status).signal).toBe("SIGKILL");
  });

  it("Ctrl-C on the terminal interrupts the foreground process, as on a real terminal", async () => {
    const p = await sb.spawn("bash", { args: ["-c", "trap 'echo got-int; exit 3' INT; echo ready; while :; do sleep 0.05; done"], pty: true, stdin: "piped" });
    const reader = p.stdout!.getReader();
    const seen = { text: "" };
    await until(reader, seen, /ready\r\n/);
    await write(p, "\x03");
    await until(reader, seen, /got-int/);
    expect((await p.status).code).toBe(3);
  });

  it("refuses resize of a process without a pty, and of one that is gone", async () => {
    const plain = await sb.spawn("sleep", { args: ["30"] });
    await expect(plain.resize(80, 24)).rejects.toThrow(/not started with a pty/);
    await plain.kill("SIGKILL");
    await plain.status;
    await expect(plain.resize(80, 24)).rejects.toBeInstanceOf(RpcError);
  });

  it("refuses bad sizes and stderr beside a pty, naming the option", async () => {
    await expect(sb.spawn("true", { pty: true, cols: 0 })).rejects.toThrow(/cols: must be an integer from 1 to 65535/);
    await expect(sb.spawn("true", { pty: true, stderr: "piped" })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(sb.spawn("true", { rows: 10 })).rejects.toThrow(/only with pty/);
    const p = await sb.spawn("sleep", { args: ["30"], pty: true });
    await expect(p.resize(70000, 10)).rejects.toBeInstanceOf(InvalidOptionError);
    await p.kill("SIGKILL");
  });

  it("gives each sandbox its own ptys: a pty of another sandbox is not visible", async () => {
    const p = await sb.spawn("bash", { args: ["-c", "tty; sleep 30"], pty: true });
    const reader = p.stdout!.getReader();
    const seen = { text: "" };
    const [name] = await until(reader, seen, /\/dev\/pts\/\d+/);
    await using other = await Sandbox.create(daemon.opts);
    const out = await other.sh`ls /dev/pts`.text();
    expect(out.split(/\s+/).filter((n) => /^\d+$/.test(n))).toEqual([]);
    expect(name).toMatch(/^\/dev\/pts\/\d+$/);
    await p.kill("SIGKILL");
  });
});
