// The README's allow-lists for package managers (issue 16 item 5), tested as a user meets them:
// each tool runs in a sandbox whose allowNet is exactly its README row, against the real registry.
// The rows are read from the README, so the table and the test cannot drift apart.
//
// Reaching the registries is this host's business: where their names resolve to addresses the
// proxy refuses by default (these CI machines reach the registries through an interceptor on a
// documentation address), the daemon gets those addresses in `egress.allowedRanges`, as an
// operator with a mirror would configure it. A registry this host cannot reach at all is skipped,
// saying so. Cargo itself is not visible inside sandboxes here (rustup installs it under /root),
// so its row is checked with the requests cargo makes: the sparse index's config.json, the
// crate's index entry, then the download from the `dl` the index names.
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { useDaemon } from "../helpers/fixtures.js";
import { reachableRanges } from "../helpers/ranges.js";
import { ok, runBash } from "../helpers/bash.js";

/** A go the sandbox can run: the first on this host's PATH that lives under /usr (Debian's golang-go, /usr/local/go). */
const GO = [...(process.env.PATH ?? "").split(":"), "/usr/bin"].map((dir) => `${dir}/go`).filter((p) => existsSync(p)).map((p) => realpathSync(p)).find((p) => p.startsWith("/usr/")) ?? null;

const README = fileURLToPath(new URL("../../../../README.md", import.meta.url));

/** The README's "Allow-lists for package managers" table: tool → allowNet entries. */
function readmeRows(): Map<string, string[]> {
  const text = readFileSync(README, "utf8");
  const section = text.split("#### Allow-lists for package managers")[1]?.split("\n#")[0];
  if (!section) throw new Error("README: no '#### Allow-lists for package managers' section");
  const rows = new Map<string, string[]>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    if (cells.length < 4 || !cells[2]!.includes("`")) continue;
    rows.set(cells[1]!, [...cells[2]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
  }
  return rows;
}

const rows = readmeRows();
const row = (tool: string): string[] => {
  const entries = rows.get(tool);
  if (!entries) throw new Error(`README's allow-list table has no row for ${tool}`);
  return entries;
};

/** Addresses this host resolves the names to; null for a name it cannot resolve. */
/** Whether this host gets an HTTP answer from `url` (any status) within a few seconds. */
async function reachable(url: string): Promise<boolean> {
  try {
    await fetch(url, { method: "HEAD", signal: AbortSignal.timeout(8000), redirect: "manual" });
    return true;
  } catch {
    return false;
  }
}

const PROBES: Record<string, string> = {
  pip: "https://pypi.org/simple/six/",
  npm: "https://registry.npmjs.org/is-number",
  cargo: "https://index.crates.io/config.json",
  go: "https://proxy.golang.org/github.com/google/uuid/@v/v1.6.0.info",
  Maven: "https://repo.maven.apache.org/maven2/junit/junit/4.13.2/junit-4.13.2.pom",
};
const reach = new Map<string, boolean>();
let sumdb = false;
/** The addresses of the registries that the proxy would refuse by default, allowed as an operator's mirror would be. */
let allowedRanges: string[] = [];

beforeAll(async () => {
  for (const [tool, url] of Object.entries(PROBES)) reach.set(tool, await reachable(url));
  sumdb = await reachable("https://sum.golang.org/lookup/github.com/google/uuid@v1.6.0");
  // Only the addresses the proxy would refuse (by the daemon's own classification); public ones pass anyway.
  allowedRanges = await reachableRanges([...rows.values()].flat().map((e) => e.replace(/:\d+$/, "")));
}, 60_000);
const daemon = useDaemon(() => ({ config: { warmPool: 0, egress: { allowedRanges } } }));

/** Runs `script` in a fresh sandbox allowed exactly `allowNet`; returns its stdout or fails showing both streams. */
async function inSandbox(allowNet: string[], script: string, what: string, env: Record<string, string> = {}): Promise<string> {
  const sb = await Sandbox.create({ ...daemon.opts, allowNet, memory: "2GiB" });
  try {
    return ok(await runBash(sb, script, { env }), what);
  } finally {
    await sb.kill().catch(() => {});
  }
}

describe("the README's allow-lists for package managers", () => {
  it("has a row for pip, npm, cargo, go and Maven", () => {
    expect([...rows.keys()]).toEqual(["pip", "npm", "cargo", "go", "Maven"]);
  });

  it("pip downloads a package with exactly its row, and not with the wildcard alone", async (ctx) => {
    if (!reach.get("pip")) return ctx.skip("PyPI (pypi.org) is unreachable from this host");
    const pip = "python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check --dest /tmp/dl six==1.16.0 && ls /tmp/dl";
    expect(await inSandbox(row("pip"), pip, "pip download")).toContain("six-1.16.0-py2.py3-none-any.whl");
    // What the README used to say: `*.pypi.org` does not cover pypi.org itself.
    const wildcard = await Sandbox.create({ ...daemon.opts, allowNet: ["*.pypi.org", "files.pythonhosted.org"] });
    try {
      const r = await runBash(wildcard, `${pip.replace("--dest", "--retries 0 --timeout 5 --dest")}`);
      expect(r.code).not.toBe(0);
      expect((await wildcard.egressLog()).some((e) => !e.allowed && e.host === "pypi.org")).toBe(true);
    } finally {
      await wildcard.kill().catch(() => {});
    }
  }, 120_000);

  it("npm packs a package with exactly its row", async (ctx) => {
    if (!reach.get("npm")) return ctx.skip("the npm registry (registry.npmjs.org) is unreachable from this host");
    const npm = "npm --no-update-notifier --no-audit --no-fund --loglevel=error";
    const out = await inSandbox(row("npm"), `mkdir -p /tmp/p && cd /tmp/p && ${npm} view is-number@7.0.0 version && ${npm} pack is-number@7.0.0 && ls`, "npm pack");
    expect(out).toMatch(/^7\.0\.0\n[\s\S]*is-number-7\.0\.0\.tgz/);
  }, 120_000);

  it("cargo's requests (sparse index, then the crate from the index's dl) pass with exactly its row", async (ctx) => {
    if (!reach.get("cargo")) return ctx.skip("crates.io (index.crates.io) is unreachable from this host");
    const script = [
      "set -euo pipefail",
      "curl -sSf https://index.crates.io/config.json > /tmp/config.json",
      "dl=$(python3 -c 'import json; print(json.load(open(\"/tmp/config.json\"))[\"dl\"])')",
      "curl -sSf https://index.crates.io/it/oa/itoa | grep -c '\"vers\":' > /dev/null",
      'curl -sSfL "$dl/itoa/1.0.11/download" -o /tmp/itoa.crate',
      "tar -tzf /tmp/itoa.crate | grep -x 'itoa-1.0.11/Cargo.toml'",
    ].join("\n");
    expect(await inSandbox(row("cargo"), script, "cargo's requests")).toBe("itoa-1.0.11/Cargo.toml\n");
  }, 120_000);

  it("go downloads a module with exactly its row", async (ctx) => {
    if (!GO) return ctx.skip("no go under /usr (sandboxes see only /usr): .ci/run installs golang-go");
    if (!reach.get("go")) return ctx.skip("the Go module proxy (proxy.golang.org) is unreachable from this host");
    // The checksum database is checked where this host reaches it; these CI machines do not.
    const env: Record<string, string> = { GOPATH: "/tmp/go", GOCACHE: "/tmp/go-cache", GOFLAGS: "-modcacherw", GOPROXY: "https://proxy.golang.org" };
    if (!sumdb) env.GOSUMDB = "off";
    const out = await inSandbox(row("go"), `${GO} mod download -json github.com/google/uuid@v1.6.0`, "go mod download", env);
    expect(JSON.parse(out)).toMatchObject({ Path: "github.com/google/uuid", Version: "v1.6.0" });
  }, 180_000);

  it("Maven resolves an artifact and its plugins from Central with exactly its row", async (ctx) => {
    if (!existsSync("/usr/bin/mvn")) return ctx.skip("no Debian maven (/usr/bin/mvn): .ci/run installs it");
    if (!reach.get("Maven")) return ctx.skip("Maven Central (repo.maven.apache.org) is unreachable from this host");
    const mvn = "mvn -B -q -Dmaven.repo.local=/tmp/m2 dependency:get -Dartifact=junit:junit:4.13.2 -Dtransitive=false && ls /tmp/m2/junit/junit/4.13.2";
    expect(await inSandbox(row("Maven"), mvn, "mvn dependency:get")).toContain("junit-4.13.2.jar");
  }, 300_000);
});
