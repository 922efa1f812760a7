/**
 * The runnable snippets of `@deno/sandbox` 0.13.2's README and `.d.ts` examples, with only the
 * import changed, each asserting what Deno's docs state. The snippets call `Sandbox.create()`
 * with no connection options, as Deno's do: SBX_URL and SBX_TOKEN point them at a test daemon.
 * Where Deno's docs contradict themselves the test says which reading sbx follows.
 */
import * as nodeFs from "node:fs";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ChildProcess, Client, InvalidMemoryError, InvalidTimeoutError, KillController, NotSupportedError, Sandbox, SandboxCommandError, SeekMode,
} from "../../src/index.js";
import { startDaemon, type TestDaemon } from "../../../daemon/test/helpers/daemon.js";

let daemon: TestDaemon;
let local: string;
const saved = { url: process.env.SBX_URL, token: process.env.SBX_TOKEN, cwd: process.cwd() };

beforeAll(async () => {
  daemon = await startDaemon();
  process.env.SBX_URL = daemon.url;
  process.env.SBX_TOKEN = daemon.token;
  local = await fsp.mkdtemp(join(tmpdir(), "sbx-deno-compat-"));
  process.chdir(local);
});

afterAll(async () => {
  process.chdir(saved.cwd);
  for (const [k, v] of [["SBX_URL", saved.url], ["SBX_TOKEN", saved.token]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await daemon?.[Symbol.asyncDispose]();
  if (local) await fsp.rm(local, { recursive: true, force: true });
});

describe("README", () => {
  it("A.4 sh`pwd`.text() is the home with its newline", async () => {
    await using sandbox = await Sandbox.create();
    const text = await sandbox.sh`pwd`.text();
    expect(text).toBe("/home/sandbox\n");
  });

  it("A.9 template commands: escaping, arrays, json", async () => {
    await using sandbox = await Sandbox.create();
    const filename = "file with spaces.txt";
    const content = "Hello, world!";
    await sandbox.sh`echo ${content} > ${filename}`;
    expect(await sandbox.fs.readTextFile(filename)).toBe("Hello, world!\n");
    const files = ["file1.txt", "file2.txt", "file3.txt"];
    await sandbox.sh`touch ${files}`;
    await sandbox.sh`rm ${files}`;
    expect(await sandbox.sh`ls`.text()).toBe("file with spaces.txt\n");
    const data = await sandbox.sh`echo '{"count": 42}'`.json<{ count: number }>();
    expect(data.count).toBe(42);
  });

  it("A.10 commands throw by default; noThrow() hands back the status", async () => {
    await using sandbox = await Sandbox.create();
    await expect(sandbox.sh`exit 1`).rejects.toBeInstanceOf(SandboxCommandError);
    const result = await sandbox.sh`exit 1`.noThrow();
    expect(result.status.code).toBe(1);
    expect(result.status.success).toBe(false);
    // noThrow(false) throws again, and the setting survives later calls on the builder.
    await expect(sandbox.sh`exit 1`.noThrow().noThrow(false)).rejects.toThrow("Command failed with exit code 1");
    await expect(sandbox.sh`echo out; exit 3`.noThrow().text()).resolves.toBe("out\n");
  });

  it("A.11 KillController cancels a running command", async () => {
    await using sandbox = await Sandbox.create();
    const controller = new KillController();
    const cmd = sandbox.sh`sleep 30`.signal(controller.signal);
    const promise = cmd.text();
    const started = Date.now();
    setTimeout(() => controller.kill(), 500);
    const error = await promise.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxCommandError);
    expect((error as SandboxCommandError).code).toBe(143);
    expect(Date.now() - started).toBeLessThan(10_000);
    // A command built with the aborted signal never starts.
    const after = await sandbox.sh`touch never-ran`.signal(controller.signal).noThrow();
    expect(after.status.code).toBe(143);
    await expect(sandbox.fs.stat("never-ran")).rejects.toThrow(/ENOENT/);
  });

  it("A.12 stdout('piped') gives bytes and text", async () => {
    await using sandbox = await Sandbox.create();
    await sandbox.fs.writeFile("binary-file.png", new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2]));
    const result = await sandbox.sh`cat binary-file.png`.stdout("piped");
    expect(result.stdout!.length).toBe(7);
    expect(typeof result.stdoutText).toBe("string");
    nodeFs.writeFileSync("output.png", result.stdout!);
    expect(nodeFs.readFileSync("output.png").length).toBe(7);
  });

  it("A.13 SandboxCommandError.code is the exit code; the message holds no script", async () => {
    await using sandbox = await Sandbox.create();
    const secret = "hunter2-in-the-script";
    const error = await sandbox.sh`echo ${secret} >/dev/null; echo oops >&2; exit 42`.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxCommandError);
    expect((error as SandboxCommandError).code).toBe(42);
    expect((error as Error).message).toBe("Command failed with exit code 42\noops\n");
    expect((error as Error).message).not.toContain(secret);
  });

  it("A.14 env.set, then a script sees it; env.get and toObject include the base environment", async () => {
    await using sandbox = await Sandbox.create();
    await sandbox.env.set("API_KEY", "secret-key-123");
    await sandbox.env.set("NODE_ENV", "production");
    const apiKey = await sandbox.sh`echo $API_KEY`.text();
    expect(apiKey.trim()).toBe("secret-key-123");
    expect(await sandbox.env.get("PATH")).toContain("/usr/bin");
    expect(await sandbox.env.toObject()).toMatchObject({ API_KEY: "secret-key-123", NODE_ENV: "production", HOME: "/home/sandbox" });
  });

  it("A.15 streams command output to a local file", async () => {
    await using sandbox = await Sandbox.create();
    await sandbox.fs.writeTextFile("big.txt", "#".repeat(5_000_000));
    const child = await sandbox.spawn("cat", { args: ["big.txt"], stdout: "piped" });
    const file = nodeFs.createWriteStream("./big-local-copy.txt");
    await child.stdout!.pipeTo(Writable.toWeb(file) as WritableStream<Uint8Array>);
    const status = await child.status;
    expect(status).toMatchObject({ success: true, code: 0 });
    expect(nodeFs.statSync("./big-local-copy.txt").size).toBe(5_000_000);
  });

  it("A.16 upload: a file to a path, a directory into the current directory", async () => {
    await fsp.writeFile("README.md", "# readme\n");
    await fsp.mkdir("my-project/src", { recursive: true });
    await fsp.writeFile("my-project/src/main.ts", "main");
    await using sandbox = await Sandbox.create();
    await sandbox.fs.upload("./README.md", "./readme-copy.md");
    await sandbox.fs.upload("./my-project", ".");
    expect(await sandbox.fs.readTextFile("readme-copy.md")).toBe("# readme\n");
    expect(await sandbox.fs.readTextFile("my-project/src/main.ts")).toBe("main");
  });

  it("A.17/A.18 a session sandbox dies with its connection; a timed one outlives close() and is killed explicitly", async () => {
    const sandbox = await Sandbox.create({ timeout: "5m" });
    const id = sandbox.id;
    await sandbox.close();
    await sandbox.closed;
    const reconnected = await Sandbox.connect(id);
    expect(await reconnected.sh`echo 'Still alive!'`.text()).toBe("Still alive!\n");
    await reconnected.kill();
    await expect(Sandbox.connect(id)).rejects.toThrow(`no running sandbox '${id}'`);

    let sessionId = "";
    {
      await using session = await Sandbox.create({ timeout: "session" });
      sessionId = session.id;
    }
    await vi.waitFor(async () => expect((await new Client().sandboxes.list()).map((s) => s.id)).not.toContain(sessionId), { timeout: 20_000, interval: 250 });
  });

  it("A.19 memory in Deno's units, and Deno's error class for a bad one", async () => {
    {
      await using sandbox = await Sandbox.create({ memory: "1GiB" });
      expect(sandbox.id).toMatch(/^sbx_/);
    }
    for (const memory of ["805307kB", "786432KiB", 805306368, "1GB"] as const) {
      await using sandbox = await Sandbox.create({ memory });
      expect(sandbox.id).toMatch(/^sbx_/);
    }
    await expect(Sandbox.create({ memory: "lots" as never })).rejects.toBeInstanceOf(InvalidMemoryError);
    await expect(Sandbox.create({ memory: "64MiB" })).rejects.toBeInstanceOf(InvalidMemoryError);
    await expect(Sandbox.create({ timeout: "soon" as never })).rejects.toBeInstanceOf(InvalidTimeoutError);
  });

  it("A.23 close() in finally", async () => {
    const sandbox = await Sandbox.create();
    try {
      expect(await sandbox.sh`true`).toMatchObject({ status: { success: true } });
    } finally {
      await sandbox.close();
    }
  });

  it("options of Deno's hosted sandboxes are ignored with one warning line; ones sbx lacks are refused", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      await using sandbox = await Sandbox.create({ region: "ord", debug: true, org: "acme", apiEndpoint: "https://console.deno.com" });
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/^sbx: Sandbox.create ignores 'region', 'debug', 'org', 'apiEndpoint'/);
      expect(sandbox.id).toMatch(/^sbx_/);
    } finally {
      warn.mockRestore();
    }
    await expect(Sandbox.create({ ssh: true })).rejects.toBeInstanceOf(NotSupportedError);
    // `root` is passed on: this daemon has no such snapshot (booting from one: packages/daemon/test/volumes/root.integration.test.ts).
    await expect(Sandbox.create({ root: "my-snapshot" })).rejects.toThrow("no volume or snapshot 'my-snapshot'");
  });
});

describe(".d.ts examples", () => {
  it("A.30 kill(SIGKILL), then status says so; kill after exit resolves; await using a child kills it", async () => {
    await using sandbox = await Sandbox.create();
    const child = await sandbox.spawn("sleep", { args: ["10"] });
    await child.kill("SIGKILL");
    const status = await child.status;
    expect(status.signal).toBe("SIGKILL");
    await expect(child.kill()).resolves.toBeUndefined();
    let disposed: ChildProcess;
    {
      await using sleeper = await sandbox.spawn("sleep", { args: ["30"] });
      disposed = sleeper;
    }
    expect((await disposed.status).signal).toBe("SIGTERM");
  });

  it("spawn takes file: URLs for the command and cwd, as Deno's", async () => {
    await using sandbox = await Sandbox.create();
    const child = await sandbox.spawn(new URL("file:///bin/pwd"), { cwd: new URL("file:///tmp") });
    expect((await child.output()).stdoutText).toBe("/tmp\n");
    await expect(sandbox.spawn(new URL("https://example.com/x"))).rejects.toThrow(TypeError);
  });

  it("A.31/A.34 text() is stdout exactly", async () => {
    await using sandbox = await Sandbox.create();
    const message = "hello";
    const cmd = sandbox.sh`echo ${message}`;
    expect(await cmd.text()).toBe("hello\n");
    expect(await sandbox.sh`echo "hello world"`.text()).toBe("hello world\n");
    expect(await sandbox.sh`printf 'no newline'`.text()).toBe("no newline");
  });

  it("A.33 a KillSignal's SIGTERM ends the command (which then fails, code 143, unless noThrow)", async () => {
    await using sandbox = await Sandbox.create();
    const controller = new KillController();
    const cmd = sandbox.sh`sleep 10`.signal(controller.signal);
    const promise = cmd.text();
    await new Promise((r) => setTimeout(r, 300));
    controller.kill("SIGTERM");
    await expect(promise).rejects.toMatchObject({ code: 143 });
    const ac = new AbortController();
    const aborted = sandbox.sh`sleep 10`.signal(ac.signal).noThrow();
    setTimeout(() => ac.abort(), 300);
    expect((await aborted).status).toMatchObject({ code: 143, signal: "SIGTERM" });
    expect(() => sandbox.sh`true`.signal({} as never)).toThrow("Invalid parameter. Expected a KillSignal or AbortSignal.");
  });

  it("A.35 json(), and Deno's error text when stdout is not JSON", async () => {
    await using sandbox = await Sandbox.create();
    const data = await sandbox.sh`echo '{"key": "value"}'`.json<{ key: string }>();
    expect(data.key).toBe("value");
    const err = await sandbox.sh`echo '{bad'`.json().catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^Failed to parse JSON: .+\n\{bad\n$/);
  });

  it("A.36 result() with piped stdout", async () => {
    await using sandbox = await Sandbox.create();
    const result = await sandbox.sh`echo "hello"`.stdout("piped").result();
    expect(result.status.success).toBe(true);
    expect(result.stdout).toBeInstanceOf(Uint8Array);
    expect(result.stdoutText).toBe("hello\n");
  });

  it("sh: stderr('inherit'), stdout('null'), sudo refused clearly, cwd/env kept through chaining, objects refused", async () => {
    await using sandbox = await Sandbox.create();
    const quiet = await sandbox.sh`echo gone; echo err >&2`.stdout("null").stderr("null");
    expect(quiet.stdoutText).toBeNull();
    expect(quiet.stderrText).toBeNull();
    expect(await sandbox.sh`echo "$A $(pwd)"`.env("A", "1").cwd("/tmp").noThrow().text()).toBe("1 /tmp\n");
    await expect(sandbox.sh`id -u`.sudo().text()).rejects.toThrow("sudo: this sandbox has no root to run as; only a sandbox booted from an image (create it with root) has one");
    await expect(sandbox.sh`echo ${{ a: 1 }}`).rejects.toThrow("Cannot use objects as shell arguments");
    expect(await sandbox.sh`printf '[%s]' ${null} ${undefined}`.text()).toBe("[][]");
    const { sh } = sandbox;
    expect(await sh`echo destructured`.text()).toBe("destructured\n");
  });

  it("A.52–A.97 fs calls as documented (FsFile, seek, truncate, umask, utime)", async () => {
    await using sandbox = await Sandbox.create();
    await sandbox.fs.writeTextFile("hello.txt", "Hello, World!");
    using_file: {
      await using file = await sandbox.fs.open("hello.txt", { read: true, write: true });
      const buf = new Uint8Array(5);
      await file.seek(7, SeekMode.Start);
      expect(await file.read(buf)).toBe(5);
      expect(new TextDecoder().decode(buf)).toBe("World");
      await file.truncate(5);
      break using_file;
    }
    expect(await sandbox.fs.readTextFile("hello.txt")).toBe("Hello");
    await sandbox.fs.truncate("hello.txt", 2);
    expect(await sandbox.fs.readTextFile("hello.txt")).toBe("He");
    const old = await sandbox.fs.umask(0o027);
    expect(old).toBe(0o022);
    await sandbox.fs.utime("hello.txt", 1556495550, new Date());
    expect((await sandbox.fs.stat("hello.txt")).atime.getTime()).toBe(1556495550_000);
    expect(await sandbox.fs.makeTempFile()).toMatch(/^\/tmp\//);
  });

  it("A.110/A.111 extendTimeout sets the expiry to now + the duration; kill ends the sandbox", async () => {
    const sandbox = await Sandbox.create({ timeout: "10m" });
    const before = Date.now();
    const until = await sandbox.extendTimeout("30s");
    expect(until.getTime()).toBeGreaterThanOrEqual(before + 30_000);
    expect(until.getTime()).toBeLessThan(before + 60_000);
    await sandbox.kill();
    await sandbox.closed;
  });

  it("Sandbox.connect({ id, ...options }) and client.sandboxes", async () => {
    const client = new Client({ url: daemon.url, token: daemon.token });
    const sandbox = await client.sandboxes.create({ labels: { suite: "deno-compat" } });
    try {
      const again = await Sandbox.connect({ id: sandbox.id, url: daemon.url, token: daemon.token });
      expect(await again.sh`echo same`.text()).toBe("same\n");
      await again.close();
      const listed = await client.sandboxes.list({ labels: { suite: "deno-compat" } });
      expect(listed).toEqual([expect.objectContaining({ id: sandbox.id, status: "running", stoppedAt: null, labels: { suite: "deno-compat" } })]);
      expect(listed[0]!.createdAt).toBeInstanceOf(Date);
      await expect(client.apps.list()).rejects.toBeInstanceOf(NotSupportedError);
      await expect(sandbox.exposeSsh()).rejects.toBeInstanceOf(NotSupportedError);
    } finally {
      await sandbox.kill();
    }
  });
});
