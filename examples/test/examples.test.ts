import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { useDaemon } from "../../packages/daemon/test/helpers/fixtures.js";
import { startUpstreams, type Upstreams } from "../../packages/daemon/test/helpers/upstreams.js";
import { whyNoImageBuild } from "../../packages/daemon/test/helpers/images.js";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const examples = join(here, "..");
const require = createRequire(import.meta.url);
/** Local upstreams by real names (api.openai.com among them), which the daemon reaches through egress.resolve. */
let up: Upstreams;
let caDir: string;

beforeAll(async () => {
  up = await startUpstreams();
  caDir = mkdtempSync(join(tmpdir(), "sbx-examples-ca-"));
  writeFileSync(join(caDir, "ca.pem"), up.caPem);
});
// registered before the daemon's hooks, so it runs after the daemon stopped
afterAll(async () => {
  await up?.close();
  if (caDir) rmSync(caDir, { recursive: true, force: true });
});
const daemon = useDaemon(() => ({ config: { egress: { resolve: up.resolve, extraCaCerts: [join(caDir, "ca.pem")] } } }));

const env = () => ({ ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token });

const cannotBuildImages = await whyNoImageBuild();

describe("examples", () => {
  it("python-image.ts builds a root image with Python packages once and starts ten sandboxes from it", async (ctx) => {
    if (cannotBuildImages) return ctx.skip(cannotBuildImages);
    const tsx = join(dirname(require.resolve("tsx/package.json")), "dist", "cli.mjs");
    const { stdout } = await run(process.execPath, [tsx, "python-image.ts"], { cwd: examples, env: env(), timeout: 180_000 });
    expect(stdout).toMatch(/^built py-image-\w+ \(\d+ MiB\) in \d+ s$/m);
    expect(stdout).toMatch(/^10 sandboxes from the image in \d+ ms$/m);
    for (let i = 0; i < 10; i++) expect(stdout).toContain(`{sandbox: ${i}, squares: [0, 1, 4, 9]}\n`);
    expect(stdout).toContain("first: hello from /usr/local/bin\nsecond has it: false\nthe user cannot write there: true\n");
    // Nothing left: the image was deleted once its sandboxes were gone.
    const { Client } = await import("@sbx/client");
    expect((await new Client(daemon.opts).images.list()).map((s) => s.slug).filter((s) => s.startsWith("py-image-"))).toEqual([]);
  }, 240_000);

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

  it("agent-secrets.ts calls an OpenAI-compatible endpoint with a key the sandbox never sees", async () => {
    const key = `sk-example-${Date.now()}-0123456789abcdef`;
    up.chatKey = key;
    const tsx = join(dirname(require.resolve("tsx/package.json")), "dist", "cli.mjs");
    const { stdout } = await run(process.execPath, [tsx, "agent-secrets.ts"], { cwd: examples, env: { ...env(), OPENAI_API_KEY: key }, timeout: 60_000 });
    expect(stdout).toMatch(/^inside, OPENAI_API_KEY is SBX_SECRET_[0-9A-Za-z]{32}$/m);
    expect(stdout).toContain("the model says: Hello from the local stand-in!\n");
    expect(stdout).toContain("exfiltration attempt answered 403\n");
    expect(stdout).toContain("egress log: secret OPENAI_API_KEY was sent over plain HTTP to attacker.example:80");
    expect(stdout).not.toContain(key);
    // The stand-in got the real key; the attacker's host got nothing.
    const chat = up.seen.filter((s) => s.path === "/v1/chat/completions");
    expect(chat.map((s) => s.headers.authorization)).toEqual([`Bearer ${key}`]);
    expect(up.seen.filter((s) => s.host === "attacker.example")).toEqual([]);
  });

  it("agent-runtimes.ts keeps REPL state across steps and reaches a server it started through exposeHttp", async () => {
    const tsx = join(dirname(require.resolve("tsx/package.json")), "dist", "cli.mjs");
    const { stdout } = await run(process.execPath, [tsx, "agent-runtimes.ts"], { cwd: examples, env: env(), timeout: 90_000 });
    expect(stdout).toBe(
      [
        'python said "rows: 8\\n" and returned 3.5',
        "a failing step comes back as data: IndexError: list index out of range",
        "hello, agent",
        "server listening: true",
        "from the SDK: served /private",
        `exposed at http://127.0.0.1:${stdout.match(/127\.0\.0\.1:(\d+)/)![1]}/<token>/`,
        "through the URL: served /public",
        "without the token: 401",
        "",
      ].join("\n"),
    );
    expect(await import("@sbx/client").then((m) => m.Sandbox.list({ ...daemon.opts, labels: { example: "agent-runtimes" } }))).toEqual([]);
  });

  it("from-deno.ts: programs from @deno/sandbox's README run with only the import changed", async () => {
    const tsx = join(dirname(require.resolve("tsx/package.json")), "dist", "cli.mjs");
    const { stdout } = await run(process.execPath, [tsx, "from-deno.ts"], { cwd: examples, env: env(), timeout: 60_000 });
    expect(stdout).toBe(
      [
        "42",
        "Command failed: Command failed with exit code 1",
        "Exit code: 1",
        "Success: false",
        "Exit code: 42",
        "Error message: Command failed with exit code 42",
        "API_KEY: secret-key-123",
        "",
      ].join("\n"),
    );
  });

  const deno = join(examples, "..", "node_modules", ".bin", "deno");
  it("deno.ts runs under Deno 2 through an npm: import", async () => {
    const { stdout } = await run(deno, ["run", "-A", "deno.ts"], { cwd: examples, env: { ...env(), NO_COLOR: "1" }, timeout: 120_000 });
    expect(stdout).toBe("hello from Deno 42\nwritten from Deno\n");
  });
});
