import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { runBash } from "../helpers/bash.js";
import { startUpstreams, type Upstreams } from "../helpers/upstreams.js";

/**
 * The networks operators really have (issue 16 items 8-9): a gateway or internal CA every
 * sandbox must trust, and internal address ranges the operator approves for all sandboxes.
 */

let up: Upstreams;
let dir: string;
let daemon: TestDaemon;
let plain: TestDaemon;

beforeAll(async () => {
  up = await startUpstreams();
  dir = mkdtempSync(join(tmpdir(), "sbx-operator-"));
  writeFileSync(join(dir, "corp-ca.pem"), up.caPem);
  daemon = await startDaemon({ config: { egress: { resolve: up.resolve, sandboxCaCerts: [join(dir, "corp-ca.pem")], allowedRanges: ["127.0.0.0/8"] } }, args: ["--warm-pool", "0"] });
  plain = await startDaemon({ config: { egress: { resolve: up.resolve } }, args: ["--warm-pool", "0"] });
});

afterAll(async () => {
  await daemon?.[Symbol.asyncDispose]();
  await plain?.[Symbol.asyncDispose]();
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("egress.sandboxCaCerts", () => {
  it("every sandbox trusts the operator's CA (a re-signing gateway): tools verify with it and no flag", async () => {
    await using sb = await Sandbox.create({ ...daemon.opts, allowNet: ["api.example.test"] });
    const ok = await runBash(sb, "curl -sS -o /dev/null -w '%{http_code}' https://api.example.test/echo/corp-ca && python3 -c 'import urllib.request; print(urllib.request.urlopen(\"https://api.example.test/echo/corp-ca-py\").status)'");
    expect(ok.out).toBe("200200\n");
    // Without the config, the same request fails verification.
    await using other = await Sandbox.create({ ...plain.opts, allowNet: ["api.example.test"] });
    const refused = await runBash(other, "curl -sS -o /dev/null https://api.example.test/echo/no-corp-ca");
    expect(refused.code).toBe(60);
    expect(refused.err).toMatch(/SSL certificate problem/);
  });
});

describe("egress.allowedRanges", () => {
  it("an approved range is reachable by name and address without an IP literal in allowNet; the daemon's API never", async () => {
    const port = up.httpPort;
    await using sb = await Sandbox.create({ ...daemon.opts, allowNet: [`localhost:${port}`, `localhost:${new URL(daemon.url).port}`] });
    const curl = (url: string) => runBash(sb, `env -u NO_PROXY -u no_proxy curl -sS -o /dev/null -w '%{http_code}' --proxy http://127.0.0.1:3128 ${url}`);
    const reached = await curl(`http://localhost:${port}/echo/approved`);
    expect(reached.out, reached.err).toBe("200");
    const api = await runBash(sb, `env -u NO_PROXY -u no_proxy curl -sS -D - -o /dev/null --proxy http://127.0.0.1:3128 http://localhost:${new URL(daemon.url).port}/`);
    expect(api.out).toMatch(/^HTTP\/1\.1 403 /);
    expect(api.out).toContain("is the sbx daemon's API, which sandboxes can never reach");
    // A daemon without the approval refuses the same loopback name.
    await using other = await Sandbox.create({ ...plain.opts, allowNet: [`localhost:${port}`] });
    const refused = await runBash(other, `env -u NO_PROXY -u no_proxy curl -sS -D - -o /dev/null --proxy http://127.0.0.1:3128 http://localhost:${port}/echo/not-approved`);
    expect(refused.out).toMatch(/^HTTP\/1\.1 403 /);
    expect(refused.out).toMatch(/localhost resolves to a refused address: 127\.0\.0\.1 is a loopback address/);
  });

  it("a range covering a metadata address, or that is not a CIDR block, is refused at start", async () => {
    await expect(startDaemon({ config: { egress: { allowedRanges: ["169.254.0.0/16"] } } })).rejects.toThrow(
      "config.egress.allowedRanges[0]: '169.254.0.0/16' covers the cloud metadata address 169.254.169.254, which sandboxes may never reach",
    );
    await expect(startDaemon({ config: { egress: { allowedRanges: ["10.0.0.0"] } } })).rejects.toThrow("config.egress.allowedRanges[0]: '10.0.0.0' is not a CIDR block such as 10.20.0.0/16");
  });
});
