import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ToolRunner, runTool, useToolRunner, type ToolError } from "../../src/util/host-tools.js";

/**
 * sbx-run (native/run.c) and its daemon side: the host tools the daemon needs (mkfs.ext4, mount,
 * umount, losetup...) run through it, so the daemon itself does not fork for each.
 */
const RUNNER = fileURLToPath(new URL("../../dist/sbx-run", import.meta.url));
const HOST_TOOLS = fileURLToPath(new URL("../../src/util/host-tools.ts", import.meta.url));

const failure = (p: Promise<unknown>) => p.then(() => { throw new Error("resolved"); }, (err: ToolError) => err);

/** Pids of processes named sbx-run whose parent is this process. */
function runnerPids(): number[] {
  return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat.includes("(sbx-run)") && Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === process.pid;
    } catch {
      return false;
    }
  });
}

describe("ToolRunner", () => {
  const runner = new ToolRunner(RUNNER);

  it("gives a tool's stdout and stderr, as execFile does", async () => {
    expect(await runner.run("sh", ["-c", "echo out; echo err >&2"])).toEqual({ stdout: "out\n", stderr: "err\n" });
    // arguments go through as they are: no shell, spaces and quotes kept
    expect((await runner.run("printf", ["%s|", "a b", "'c'", ""])).stdout).toBe("a b|'c'||");
  });

  it("fails as execFile does: exit status, stderr in the message, the errno of a tool that is not there, the signal", async () => {
    const exited = await failure(runner.run("sh", ["-c", "echo partial; echo 'no space left' >&2; exit 3"]));
    expect(exited.message).toBe("Command failed: sh -c echo partial; echo 'no space left' >&2; exit 3\nno space left\n");
    expect(exited).toMatchObject({ code: 3, signal: null, stdout: "partial\n", stderr: "no space left\n" });
    const missing = await failure(runner.run("no-such-tool-sbx", ["x"]));
    expect(missing.code).toBe("ENOENT");
    expect(missing.message).toContain("could not start no-such-tool-sbx");
    const killed = await failure(runner.run("sh", ["-c", "kill -TERM $$"]));
    expect(killed.signal).toBe("SIGTERM");
  });

  it("stops a tool that prints more than maxBuffer, and fails naming the stream", async () => {
    const t0 = Date.now();
    const err = await failure(runner.run("sh", ["-c", "head -c 100000 /dev/zero >&2; sleep 30"], { maxBuffer: 1000 }));
    expect(err.code).toBe("ERR_CHILD_PROCESS_STDIO_MAXBUFFER");
    expect(err.message).toContain("stderr maxBuffer length exceeded");
    expect(Date.now() - t0).toBeLessThan(10_000); // killed, not waited for
  });

  it("runs many tools at once, each answer to its own call; past 256 at once, calls wait their turn (the runner takes 512)", async () => {
    const outs = await Promise.all(Array.from({ length: 700 }, (_, i) => runner.run("sh", ["-c", `sleep 0.0${i % 10}; echo ${i}`])));
    expect(outs.map((o) => o.stdout)).toEqual(Array.from({ length: 700 }, (_, i) => `${i}\n`));
  });

  it("refuses an argument with a NUL byte, or arguments over 1 MiB, before anything runs; the runner goes on", async () => {
    expect((await failure(runner.run("echo", ["a\0b"]))).message).toContain("NUL byte");
    expect((await failure(runner.run("echo", ["x".repeat(2 << 20)]))).message).toContain("more than the tool runner takes");
    expect((await runner.run("echo", ["still here"])).stdout).toBe("still here\n");
  });

  it("fails the calls in flight when the runner dies, and starts it again for the next", async () => {
    const inFlight = failure(runner.run("sleep", ["30"]));
    await new Promise((r) => setTimeout(r, 200));
    const pids = runnerPids();
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, "SIGKILL");
    expect((await inFlight).message).toMatch(/tool runner .* was killed by SIGKILL/);
    expect((await runner.run("echo", ["again"])).stdout).toBe("again\n");
  });

  it("runs the tool with /dev/null as stdin, none of the runner's pipes, and SIGPIPE back at its default", async () => {
    const { stdout } = await runner.run("sh", ["-c", "cat; ls /proc/self/fd | wc -l; grep SigIgn /proc/self/status"]);
    const [fds, sigIgn] = stdout.trim().split("\n");
    expect(Number(fds)).toBeLessThanOrEqual(4); // 0, 1, 2 and ls's own directory fd
    expect(sigIgn).toMatch(/^SigIgn:\s+0+$/);
  });

  it("does not keep an idle process alive", () => {
    // a process that ran one tool through a runner ends by itself once it is done
    const script = `import { ToolRunner } from ${JSON.stringify(HOST_TOOLS)};
      const r = new ToolRunner(${JSON.stringify(RUNNER)});
      console.log((await r.run("echo", ["done"])).stdout.trim());`;
    const t0 = Date.now();
    const out = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
    expect(out.stderr).toBe("");
    expect(out.stdout).toBe("done\n");
    expect(out.signal).toBeNull();
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
});

describe("runTool", () => {
  it("goes through the runner once one is in use, and through execFile otherwise", async () => {
    const parent = async () => Number((await runTool("sh", ["-c", "echo $PPID"])).stdout);
    useToolRunner(null);
    expect(await parent()).toBe(process.pid);
    useToolRunner(RUNNER);
    try {
      const ppid = await parent();
      expect(ppid).not.toBe(process.pid);
      expect(readFileSync(`/proc/${ppid}/comm`, "utf8").trim()).toBe("sbx-run");
      const err = await failure(runTool("sh", ["-c", "exit 7"]));
      expect(err.code).toBe(7);
    } finally {
      useToolRunner(null);
    }
    // execFile's failures have the same shape
    expect(await failure(runTool("sh", ["-c", "echo no >&2; exit 7"]))).toMatchObject({ code: 7, stderr: "no\n" });
  });
});
