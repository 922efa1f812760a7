import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDaemon, type TestDaemon } from "../../packages/daemon/test/helpers/daemon.js";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const examples = join(here, "..");
const require = createRequire(import.meta.url);
let daemon: TestDaemon;

beforeAll(async () => {
  daemon = await startDaemon();
});
afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
});

const env = () => ({ ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token });

describe("examples", () => {
  it("quickstart.ts runs and prints what it computed in the sandbox", async () => {
    const tsx = join(dirname(require.resolve("tsx/package.json")), "dist", "cli.mjs");
    const { stdout } = await run(process.execPath, [tsx, "quickstart.ts"], { cwd: examples, env: env(), timeout: 60_000 });
    expect(stdout).toMatch(/^created sbx_[A-Za-z0-9]{24}$/m);
    expect(stdout).toMatch(/^user on sbx, kernel /m);
    expect(stdout).toContain("fib: 0 1 1 2 3 5 8 13 21 34 (exit 0)");
    expect(stdout).toContain("sum of y computed in the sandbox: 6");
    expect(stdout).toContain("downloaded total.txt: 6");
    expect(stdout).toMatch(/reading \/etc\/shadow inside: exit 1/);
    expect(await import("@sbx/client").then((m) => m.Sandbox.list({ ...daemon.opts, labels: { example: "quickstart" } }))).toEqual([]);
  });

  const deno = join(examples, "..", "node_modules", ".bin", "deno");
  it("deno.ts runs under Deno 2 through an npm: import", async () => {
    const { stdout } = await run(deno, ["run", "-A", "deno.ts"], { cwd: examples, env: { ...env(), NO_COLOR: "1" }, timeout: 120_000 });
    expect(stdout).toBe("hello from Deno 42\nwritten from Deno\n");
  });
});
