import { createHash } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { InvalidOptionError, RpcError, Sandbox, SandboxCommandError } from "@sbx/client";
import { useSandbox } from "../helpers/fixtures.js";

const { daemon, sb } = useSandbox({ sandbox: { env: { FROM_CREATE: "yes" } } });
const text = (b: Uint8Array | null) => new TextDecoder().decode(b ?? new Uint8Array());

describe("spawn", () => {
  it("runs as uid 1000 'user' in /home/sandbox with a clean environment", async () => {
    const out = await sb.spawn("bash", { args: ["-c", "id -u; id -un; pwd; echo $HOME; env | sort"] }).then((p) => p.output());
    const lines = out.stdoutText!.trim().split("\n");
    expect(lines.slice(0, 4)).toEqual(["1000", "user", "/home/sandbox", "/home/sandbox"]);
    const env = Object.fromEntries(lines.slice(4).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    expect(env.FROM_CREATE).toBe("yes");
    const proxyVars = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"].flatMap((k) => [k, k.toLowerCase()]);
    // NODE_EXTRA_CA_CERTS only where the sandbox holds secrets (it costs every Node start ~20 ms).
    const trustVars = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT", "DENO_CERT"];
    expect(Object.keys(env).filter((k) => !["HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG", "FROM_CREATE", "PWD", "SHLVL", "_", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "DENO_NO_UPDATE_CHECK", "DENO_NO_PROMPT", ...proxyVars, ...trustVars].includes(k))).toEqual([]);
    for (const k of trustVars) expect(env[k]).toBe("/.sbx/ca-bundle.pem");
    expect(env.HTTPS_PROXY).toBe("http://127.0.0.1:3128");
    expect(env.NODE_OPTIONS).toBe("--require /.sbx/node-proxy.cjs");
    // The daemon's Deno comes last on PATH (one the user installs wins) and never prompts or checks for updates.
    expect(env.PATH!.endsWith(":/.sbx/bin")).toBe(true);
    expect([env.DENO_NO_UPDATE_CHECK, env.DENO_NO_PROMPT]).toEqual(["1", "1"]);
  });

  it("streams stdout while the process is still running", async () => {
    const p = await sb.spawn("bash", { args: ["-c", "echo first; read line; echo \"got $line\""], stdin: "piped" });
    const reader = p.stdout!.getReader();
    const first = await reader.read();
    expect(text(first.value!)).toBe("first\n");
    const writer = p.stdin!.getWriter();
    await writer.write(new TextEncoder().encode("ping\n"));
    await writer.close();
    const second = await reader.read();
    expect(text(second.value!)).toBe("got ping\n");
    expect((await p.status).code).toBe(0);
  });

  it("a writer may reuse its buffer as soon as write() resolves", async () => {
    const p = await sb.spawn("sha256sum", { stdin: "piped" });
    const writer = p.stdin!.getWriter();
    const buf = new Uint8Array(1 << 20);
    const hash = createHash("sha256");
    // 24 MiB through one buffer, refilled after each write: three windows, so some writes wait for credit.
    for (let i = 0; i < 24; i++) {
      buf.fill(i + 1);
      hash.update(buf);
      await writer.write(buf);
    }
    await writer.close();
    expect((await p.output()).stdoutText).toBe(`${hash.digest("hex")}  -\n`);
  });

  it("a stdio mode that is not one of the modes is refused naming the option, and nothing is started", async () => {
    const bad: Array<[string, unknown]> = [["stdout", "bogus"], ["stderr", "inheirt"], ["stdin", "inherit"], ["stdout", 1]];
    for (const [option, mode] of bad) {
      const err = await sb.spawn("touch", { args: [`/tmp/started-${option}`], [option]: mode } as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect((err as Error).message).toMatch(new RegExp(`^${option}: must be "piped", `));
    }
    expect(await sb.sh`ls /tmp | grep -c started- || true`.text()).toBe("0\n");
  });

  it("reports exit codes, signals and success", async () => {
    expect(await (await sb.spawn("bash", { args: ["-c", "exit 7"] })).status).toEqual({ success: false, code: 7, signal: null, oom: false });
    const sleeper = await sb.spawn("sleep", { args: ["30"] });
    await sleeper.kill("SIGKILL");
    expect(await sleeper.status).toEqual({ success: false, code: 137, signal: "SIGKILL", oom: false });
    const term = await sb.spawn("sleep", { args: ["30"] });
    await term.kill();
    expect((await term.status).signal).toBe("SIGTERM");
  });

  it("separates stdout and stderr and can discard either", async () => {
    const out = await (await sb.spawn("bash", { args: ["-c", "echo out; echo err >&2"] })).output();
    expect([out.stdoutText, out.stderrText]).toEqual(["out\n", "err\n"]);
    const quiet = await (await sb.spawn("bash", { args: ["-c", "echo out; echo err >&2"], stdout: "null" })).output();
    expect([quiet.stdout, quiet.stderrText]).toEqual([null, "err\n"]);
  });

  it("applies cwd, env and clearEnv", async () => {
    await sb.fs.mkdir("work/dir", { recursive: true });
    const out = await (await sb.spawn("bash", { args: ["-c", "pwd; echo $X"], cwd: "work/dir", env: { X: "1" } })).output();
    expect(out.stdoutText).toBe("/home/sandbox/work/dir\n1\n");
    const bare = await (await sb.spawn("/usr/bin/env", { clearEnv: true, env: { ONLY: "me" } })).output();
    expect(bare.stdoutText).toBe("ONLY=me\n");
  });

  it("fails clearly for a missing command or working directory, without hanging", async () => {
    const missing = await sb.spawn("no-such-command").catch((e) => e);
    expect(missing).toBeInstanceOf(RpcError);
    expect(missing.message).toMatch(/command not found: 'no-such-command'/);
    expect(missing.errno).toBe("ENOENT");
    const badCwd = await sb.spawn("true", { cwd: "/nope" }).catch((e) => e);
    expect(badCwd.message).toMatch(/working directory '\/nope' does not exist/);
    const notExec = await sb.spawn("/etc/passwd").catch((e) => e);
    expect(notExec.message).toMatch(/not an executable file/);
  });

  it("kills on AbortSignal", async () => {
    const ac = new AbortController();
    const p = await sb.spawn("sleep", { args: ["30"], signal: ac.signal });
    ac.abort();
    expect((await p.status).signal).toBe("SIGTERM");
  });

  it("moves 1 GiB of stdout with backpressure and bounded memory", async () => {
    const before = process.memoryUsage().rss;
    const p = await sb.spawn("head", { args: ["-c", String(1 << 30), "/dev/zero"] });
    let total = 0;
    let peak = 0;
    for await (const chunk of p.stdout as unknown as AsyncIterable<Uint8Array>) {
      total += chunk.byteLength;
      if ((total & 0xfffffff) < chunk.byteLength) peak = Math.max(peak, process.memoryUsage().rss);
    }
    expect(total).toBe(1 << 30);
    expect((await p.status).code).toBe(0);
    expect(peak - before).toBeLessThan(64 << 20);
    const daemonRss = Number(/VmHWM:\s+(\d+)/.exec(require("node:fs").readFileSync(`/proc/${daemon.proc.pid}/status`, "utf8"))![1]) * 1024;
    expect(daemonRss).toBeLessThan(256 << 20);
  });

  it("stdout and stderr flooding at once in writes of every size arrive byte for byte, read slowly, while calls go on", async () => {
    // Each stream repeats its own block of a prime length, so a lost, doubled or misplaced piece shows.
    const BLOCK = 65521;
    const total = 6 << 20;
    const script = [
      "import os",
      `B = [bytes(((j * 131 + s * 7 + (j >> 8)) & 255) for j in range(${BLOCK})) for s in (1, 2)]`,
      "sizes = [1, 7, 4096, 65527, 65536, 65537, 200000, 3, 131072]",
      "pos = [0, 0]; k = 0",
      `while min(pos) < ${total}:`,
      "    for s in (0, 1):",
      `        n = min(sizes[k % len(sizes)], ${total} - pos[s]); k += 1`,
      `        o = pos[s] % ${BLOCK}`,
      `        view = memoryview((B[s] * ((o + n) // ${BLOCK} + 2))[o:o + n])`,
      "        while view: view = view[os.write(s + 1, view):]",
      "        pos[s] += n",
    ].join("\n");
    const expected = (s: number) => {
      const block = Buffer.alloc(BLOCK);
      for (let j = 0; j < BLOCK; j++) block[j] = (j * 131 + s * 7 + (j >> 8)) & 255;
      return Buffer.concat(Array(Math.ceil(total / BLOCK)).fill(block)).subarray(0, total);
    };
    const p = await sb.spawn("python3", { args: ["-c", script] });
    const slowly = async (stream: ReadableStream<Uint8Array>) => {
      const chunks: Uint8Array[] = [];
      const reader = stream.getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        chunks.push(r.value);
        if (chunks.length % 8 === 0) await new Promise((res) => setTimeout(res, 2));
      }
      return Buffer.concat(chunks);
    };
    const calls = (async () => {
      let n = 0;
      for (let i = 0; i < 20; i++) n += (await (await sb.spawn("true")).status).success ? 1 : 0;
      return n;
    })();
    const [out, err] = await Promise.all([slowly(p.stdout!), slowly(p.stderr!)]);
    expect((await p.status).success).toBe(true);
    expect(await calls).toBe(20);
    expect(out.length).toBe(total);
    expect(err.length).toBe(total);
    expect(out.equals(expected(1))).toBe(true);
    expect(err.equals(expected(2))).toBe(true);
  }, 60_000);

  it("gives a process's output pipes 256 KiB, at most 16 at once per sandbox (the rest keep the kernel's 64 KiB)", async () => {
    // The sandbox user's pipe pages are limited (fs.pipe-user-pages-soft): the supervisor takes 4 MiB of them at most.
    await using box = await Sandbox.create(daemon.opts);
    const sizes = () => box.sh`python3 -c ${"import fcntl; print(fcntl.fcntl(1, 1032), fcntl.fcntl(2, 1032))"}`.text();
    expect(await sizes()).toBe("262144 262144\n");
    const holders = [];
    for (let i = 0; i < 8; i++) holders.push(await box.spawn("sleep", { args: ["60"] }));
    expect(await sizes()).toBe("65536 65536\n");
    for (const h of holders) await h.kill("SIGKILL");
    await Promise.all(holders.map((h) => h.status));
    // Their pipes are given back as their output ends: the next process gets big ones again.
    await vi.waitFor(async () => expect(await sizes()).toBe("262144 262144\n"), { timeout: 5000, interval: 100 });
  }, 60_000);

  it("a slow reader holds the sandbox back instead of buffering", async () => {
    const p = await sb.spawn("head", { args: ["-c", String(64 << 20), "/dev/zero"] });
    await new Promise((r) => setTimeout(r, 500));
    // Nothing read yet: the writer must be blocked on a full pipe, not finished into a buffer.
    const raced = await Promise.race([p.status.then(() => "exited"), new Promise((r) => setTimeout(() => r("blocked"), 300))]);
    expect(raced).toBe("blocked");
    await p.stdout!.cancel();
    await p.kill("SIGKILL").catch(() => {});
  });
});

describe("sh", () => {
  it("escapes every substitution", async () => {
    const nasty = ["a b", "it's", '"q"', "$(touch /tmp/pwned)", "`id`", "x;y", "*", "\\", "new\nline", "", "-n"];
    const out = await sb.sh`printf '%s\\0' ${nasty}`.result();
    expect(out.stdoutText!.split("\0").slice(0, -1)).toEqual(nasty);
    expect((await sb.sh`ls /tmp`.text()).split("\n")).not.toContain("pwned");
  });

  it("has text, json, cwd, env and noThrow", async () => {
    expect(await sb.sh`echo hello`.text()).toBe("hello\n");
    expect(await sb.sh`echo '{"a":[1,2]}'`.json()).toEqual({ a: [1, 2] });
    expect(await sb.sh`pwd`.cwd("/tmp").text()).toBe("/tmp\n");
    expect(await sb.sh`echo $A-$B`.env("A", "1").env({ B: "2" }).text()).toBe("1-2\n");
    const res = await sb.sh`echo oops >&2; exit 3`.noThrow();
    expect(res.status.code).toBe(3);
  });

  it("throws SandboxCommandError with the status and stderr on failure", async () => {
    const err = await sb.sh`echo broken >&2; exit 2`.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxCommandError);
    expect((err as SandboxCommandError).status.code).toBe(2);
    expect((err as SandboxCommandError).stderr).toBe("broken\n");
    // As Deno's: the exit code and stderr, never the script.
    expect((err as Error).message).toBe("Command failed with exit code 2\nbroken\n");
    expect((err as SandboxCommandError).code).toBe(2);
  });

  it("can spawn for streaming", async () => {
    const p = await sb.sh`for i in 1 2 3; do echo $i; done`.spawn();
    expect((await p.output()).stdoutText).toBe("1\n2\n3\n");
  });
});

describe("tools from the host work inside", () => {
  it.each([
    ["python3", ["-c", "import sys, json; print(json.dumps(sys.version_info[:2]))"], /\[3, \d+\]/],
    ["node", ["-e", "console.log(process.versions.node)"], /^\d+\.\d+\.\d+$/m],
    ["bash", ["--version"], /GNU bash/],
    ["git", ["--version"], /git version/],
    ["curl", ["--version"], /curl \d/],
    ["ls", ["--version"], /coreutils/],
  ])("%s", async (cmd, args, expected) => {
    const out = await (await sb.spawn(cmd, { args })).output();
    expect(out.status.code).toBe(0);
    expect(out.stdoutText).toMatch(expected);
  });

  it("git can init, commit and log", async () => {
    const log = await sb.sh`cd $(mktemp -d) && git init -q && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m hello && git log --format=%s`.text();
    expect(log).toBe("hello\n");
  });
});
