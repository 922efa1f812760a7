/**
 * A Sandbox handle must not keep its Node process alive once its sandbox is gone: a script that
 * forgot to close a `Sandbox.connect` handle (as the README's tour does) has to end on its own.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { Sandbox, SandboxNotFoundError } from "../src/index.js";
import { useDaemon } from "../../daemon/test/helpers/fixtures.js";

const run = promisify(execFile);
const clientEntry = fileURLToPath(new URL("../dist/index.js", import.meta.url));
const daemon = useDaemon();

/** Runs an ES module script against the test daemon; rejects if it has not exited within `ms`. */
async function script(body: string, ms: number) {
  const source = `import { Sandbox } from ${JSON.stringify(clientEntry)};\n${body}`;
  const started = Date.now();
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", source], {
    env: { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token },
    timeout: ms,
    killSignal: "SIGKILL",
  });
  return { stdout, elapsed: Date.now() - started };
}

describe("a handle whose sandbox ended lets the process exit", () => {
  it("after the script kills the sandbox, with a second handle from Sandbox.connect never closed", async () => {
    const { stdout } = await script(
      `const sb = await Sandbox.create({ timeout: "5m" });
      try {
        const again = await Sandbox.connect(sb.id);
        process.stdout.write(await again.sh\`echo connected\`.text());
      } finally {
        await sb.kill();
      }
      console.log("scope ended");`,
      20_000,
    );
    expect(stdout).toBe("connected\nscope ended\n");
  });

  it("after its timeout, for the creating handle and a connected one alike", async () => {
    const { stdout, elapsed } = await script(
      `const sb = await Sandbox.create({ timeout: "2s" });
      const again = await Sandbox.connect(sb.id);
      const status = await (await again.spawn("sleep", { args: ["30"] })).status;
      console.log(status.signal);`,
      20_000,
    );
    expect(stdout).toBe("SIGKILL\n");
    expect(elapsed).toBeLessThan(15_000);
  });
});

describe("calls through a handle whose sandbox ended", () => {
  it("reject with SandboxNotFoundError as the daemon words it, and usage() still answers", async () => {
    const sb = await Sandbox.create({ ...daemon.opts, timeout: "5m" });
    const other = await Sandbox.connect(sb.id, daemon.opts);
    const exited = new Promise<void>((resolve) => {
      const poll = setInterval(() => other.env.get("HOME").catch((err) => err instanceof SandboxNotFoundError && (clearInterval(poll), resolve())), 20);
    });
    await sb.kill();
    await exited;
    for (const call of [() => other.sh`true`, () => other.fs.stat("/home/user"), () => other.extendTimeout("1m"), () => other.env.set("A", "b")]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SandboxNotFoundError);
      expect((err as Error).message).toBe(`no running sandbox '${sb.id}'`);
    }
    expect((await other.usage()).status).toBe("stopped");
    await other.close();
    await other.kill(); // already gone: nothing to do, no error
  });
});
