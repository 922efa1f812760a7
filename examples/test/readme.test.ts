/**
 * Every code block in README.md (and in any package's README) runs as written, or is checked in
 * the way that fits what it is. A block nobody can run fails here.
 *
 * How a block is handled, by language unless RULES names it (by `<section heading>#<n>`):
 * - ```ts: saved as a .mts file in a scratch directory where `@sbx/client` resolves, run with tsx.
 * - ```python: run with the python of the virtualenv the README's install block made.
 * - ```sh: run with `bash -e` in the scratch directory, which links `packages/` to this checkout
 *   (the README runs these "from the root of the checkout"); HOME is in the scratch directory,
 *   and ~/.local/bin is on PATH, as the README asks of the reader.
 * Each run gets SBX_URL and SBX_TOKEN of a test daemon whose egress reaches local stand-ins for
 * api.openai.com (`egress.resolve`), and OPENAI_API_KEY: a dummy key, the one placeholder the
 * runnable blocks have. Blocks run in README order, so later ones see what earlier ones made.
 * Each must exit 0 within its time bound; where the README shows output, the output must match.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { CLI, removeStateDir, waitForListening } from "../../packages/daemon/test/helpers/daemon.js";
import { useDaemon } from "../../packages/daemon/test/helpers/fixtures.js";
import { startUpstreams, type Upstreams } from "../../packages/daemon/test/helpers/upstreams.js";
import { blocksOf, type Block } from "./readme-blocks.js";

const run = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const tsx = join(dirname(createRequire(import.meta.url).resolve("tsx/package.json")), "dist", "cli.mjs");
const OPENAI_API_KEY = "sk-readme-test-0123456789abcdef";

type Rule =
  /** A picture, not a program. */
  | { kind: "diagram" }
  /** The quick start's commands: CI runs them verbatim (scripts/readme-commands.sh); here each must name real scripts. */
  | { kind: "ci-commands" }
  /** Output the README shows for an example script; `placeholders` are the parts that differ per run. */
  | { kind: "output-of"; example: string; placeholders: Array<[RegExp, string]> }
  /** The CLI synopsis: every command exists and takes every flag it lists. */
  | { kind: "cli-synopsis" }
  /** A daemon config file: parses, and a daemon starts with it; `placeholders` replace paths the README makes up. */
  | { kind: "daemon-config"; placeholders: Record<string, () => string> }
  /** Runs by its language, then `after` checks what it did. */
  | { kind: "run"; after: () => Promise<void> };

let caFile = "";
let tenantTokenFile = "";
const TENANT_TOKEN = "readme-tenant-token-0123456789";
let scratch = "";
const home = () => join(scratch, "home");
const pathWithLocalBin = () => `${join(home(), ".local", "bin")}:${dirname(process.execPath)}:${process.env.PATH}`;

const RULES: Record<string, Rule> = {
  "README.md sbx#1": { kind: "diagram" },
  "README.md Quick start#1": { kind: "ci-commands" },
  "README.md Quick start#2": {
    kind: "output-of",
    example: "quickstart.ts",
    placeholders: [
      [/sbx_[A-Za-z0-9]{24}/g, "sbx_[A-Za-z0-9]{24}"],
      [/kernel \S+/g, "kernel \\S+"],
    ],
  },
  "README.md CLI#1": { kind: "cli-synopsis" },
  "README.md CLI#2": {
    kind: "run",
    // The link works from any directory, not only the checkout.
    after: async () => {
      const { version } = JSON.parse(readFileSync(join(repo, "packages", "daemon", "package.json"), "utf8"));
      const { stdout } = await run("sbx", ["--version"], { cwd: tmpdir(), env: { ...process.env, HOME: home(), PATH: pathWithLocalBin() } });
      expect(stdout).toBe(`sbx ${version}\n`);
    },
  },
  "README.md Daemon configuration#1": { kind: "daemon-config", placeholders: { "/path/to/ca.pem": () => caFile, "/etc/ssl/corp-gateway-ca.pem": () => caFile } },
  "README.md Operating sbx#1": { kind: "daemon-config", placeholders: { "/etc/sbx/grading.token": () => tenantTokenFile } },
};

const readmes = ["README.md", ...readdirSync(join(repo, "packages")).map((p) => `packages/${p}/README.md`), "examples/README.md"].filter((f) => existsSync(join(repo, f)));
const blocks = readmes.flatMap((f) => blocksOf(join(repo, f), f));

let up: Upstreams;

beforeAll(async () => {
  up = await startUpstreams();
  scratch = mkdtempSync(join(tmpdir(), "sbx-readme-"));
  caFile = join(scratch, "upstream-ca.pem");
  writeFileSync(caFile, up.caPem);
  tenantTokenFile = join(scratch, "tenant.token");
  writeFileSync(tenantTokenFile, `${TENANT_TOKEN}\n`, { mode: 0o600 });
  // A stand-in for "the root of the checkout" that the blocks' own files do not clutter.
  symlinkSync(join(repo, "packages"), join(scratch, "packages"));
  mkdirSync(join(scratch, "node_modules", "@sbx"), { recursive: true });
  symlinkSync(join(repo, "packages", "client"), join(scratch, "node_modules", "@sbx", "client"));
  mkdirSync(home());
});
// registered before the daemon's hooks, so it runs after the daemon stopped
afterAll(async () => {
  await up?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});
const daemon = useDaemon(() => ({ config: { egress: { resolve: up.resolve, extraCaCerts: [caFile] } } }));

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token, OPENAI_API_KEY, HOME: home(), PATH: pathWithLocalBin() };
  // A virtualenv the blocks made is theirs to activate, not inherited from whoever runs the suite.
  delete e.VIRTUAL_ENV;
  return e;
}

/** Runs a block's program; fails with its output if it exits non-zero or outlives `ms`. */
async function runBlock(block: Block, ms: number): Promise<string> {
  const name = `block-${block.line}`;
  let file: string;
  let args: string[];
  if (block.lang === "ts") {
    // .mts, as the README says: an ES module (top-level await) whatever package.json says.
    writeFileSync(join(scratch, `${name}.mts`), block.code);
    [file, args] = [process.execPath, [tsx, `${name}.mts`]];
  } else if (block.lang === "python") {
    const python = join(scratch, ".venv", "bin", "python");
    if (!existsSync(python)) throw new Error(`${block.file}:${block.line}: no virtualenv at ${python}: the README's Python install block must come before its Python code`);
    writeFileSync(join(scratch, `${name}.py`), block.code);
    [file, args] = [python, [`${name}.py`]];
  } else if (block.lang === "sh") {
    writeFileSync(join(scratch, `${name}.sh`), block.code);
    [file, args] = ["bash", ["-e", `${name}.sh`]];
  } else {
    throw new Error(`${block.file}:${block.line}: no way to run a \`\`\`${block.lang || "(no language)"} block (${block.id}); give it a language or a rule in RULES`);
  }
  try {
    return (await run(file, args, { cwd: scratch, env: env(), timeout: ms, killSignal: "SIGKILL", maxBuffer: 16 << 20 })).stdout;
  } catch (err: any) {
    throw new Error(`${block.file}:${block.line} (${block.id}) failed${err.killed ? ` (still running after ${ms / 1000}s)` : ` with code ${err.code}`}:\n${err.stdout}\n${err.stderr}`);
  }
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The README's output as a pattern: literal text, but for the placeholders (the parts that differ per run). */
function outputPattern(text: string, placeholders: Array<[RegExp, string]>): RegExp {
  const marks: string[] = [];
  let marked = text;
  for (const [found, pattern] of placeholders) marked = marked.replace(found, () => `\u0000${marks.push(pattern) - 1}\u0000`);
  const source = marked.split(/\u0000(\d+)\u0000/).map((part, i) => (i % 2 ? marks[Number(part)]! : escape(part))).join("");
  return new RegExp(`^${source}$`);
}

/** `--flag` words of one synopsis entry (`--` alone ends options; it is not a flag). */
const flagsOf = (entry: string) => [...new Set(entry.match(/--[a-z][a-z-]*/g) ?? [])];

async function checkCliSynopsis(block: Block): Promise<void> {
  // One entry per `sbx ...` (continuation lines join the entry above); comments dropped.
  const entries: string[] = [];
  for (const raw of block.code.split("\n")) {
    const line = raw.replace(/\s#\s.*$/, "");
    if (!line.trim()) continue;
    if (/^\s/.test(line) && entries.length) entries[entries.length - 1] += ` ${line.trim()}`;
    else entries.push(...line.split(/\s{2,}(?=sbx )/).map((e) => e.trim()));
  }
  expect(entries.length).toBeGreaterThan(5);
  const cli = (...args: string[]) =>
    run(process.execPath, [CLI, ...args], { env: { ...process.env, SBX_URL: "ws://127.0.0.1:1" }, timeout: 30_000 }).then(
      (r) => ({ code: 0, ...r }),
      (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
    );
  let inherited: Record<string, string[]> = {};
  for (const entry of entries) {
    const words = entry.split(/\s+/);
    expect(words[0], entry).toBe("sbx");
    if (words[1] === "--version") {
      expect((await cli("--version")).code, entry).toBe(0);
      continue;
    }
    const command = [words[1]!, ...(words[1] === "daemon" && /^[a-z]+$/.test(words[2] ?? "") ? [words[2]!] : [])];
    expect((await cli(command[0]!, "--help")).code, `${entry}: sbx ${command[0]} is not a command`).toBe(0);
    // "[same options]" means those of the entry it follows the pattern of: run's for create, daemon's for daemon start.
    let flags = flagsOf(entry);
    if (entry.includes("[same options]")) flags = [...flags, ...(inherited[command[0] === "create" ? "run" : "daemon"] ?? [])];
    inherited[command.join(" ")] = flagsOf(entry);
    for (const flag of flags) {
      // A flag the command takes gets past the parser to the next word, a bogus one: so the
      // complaint is about that one (or the flag's missing value), never "Unknown option '<flag>'".
      const res = await cli(...command, flag, "--zz-not-an-option");
      expect(res.code, `sbx ${command.join(" ")} ${flag}: ${res.stderr}`).toBe(2);
      expect(res.stderr, `sbx ${command.join(" ")} does not take ${flag}`).not.toContain(`Unknown option '${flag}'`);
      expect(res.stderr).not.toContain("unknown subcommand");
    }
  }
  expect(Object.keys(inherited)).toEqual(expect.arrayContaining(["daemon", "daemon start", "run", "create", "exec", "ls", "kill", "cp", "usage", "net", "logs", "doctor"]));
}

/** `bash X` and `pnpm SCRIPT`, joined by &&: each must exist (CI runs them for real). */
function checkCiCommands(block: Block): void {
  const commands = block.code.split("\n").map((l) => l.replace(/\s#\s.*$/, "").trim()).filter(Boolean);
  expect(commands.length, "scripts/readme-commands.sh expects the quick start's two commands").toBe(2);
  const scripts = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).scripts as Record<string, string>;
  for (const part of commands.flatMap((c) => c.split("&&").map((p) => p.trim()))) {
    const [tool, arg, ...rest] = part.split(/\s+/);
    expect(rest, part).toEqual([]);
    if (tool === "bash") {
      expect(existsSync(join(repo, arg!)), part).toBe(true);
      execFileSync("bash", ["-n", join(repo, arg!)]);
    } else if (tool === "pnpm") {
      expect(scripts[arg!], `package.json has no script '${arg}'`).toBeDefined();
    } else {
      throw new Error(`the quick start runs '${part}', which this test does not know how to check: teach checkCiCommands`);
    }
  }
}

async function checkDaemonConfig(block: Block, placeholders: Record<string, () => string>): Promise<void> {
  let text = block.code;
  for (const [made_up, real] of Object.entries(placeholders)) {
    expect(text, `the README no longer shows ${made_up}: update RULES`).toContain(made_up);
    text = text.replaceAll(made_up, real());
  }
  const config = JSON.parse(text);
  const dir = mkdtempSync(join(tmpdir(), "sbx-readme-config-"));
  chmodSync(dir, 0o755); // the daemon wants its state dir's parents traversable by sandbox uids
  writeFileSync(join(dir, "config.json"), text);
  // Flags override the file ("listen" and "stateDir" name the user's real ones).
  const proc = spawn(process.execPath, [CLI, "daemon", "--config", join(dir, "config.json"), "--listen", "127.0.0.1:0", "--state-dir", join(dir, "state"), "--warm-pool", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr!.on("data", (d) => (stderr += d));
  try {
    const url = await waitForListening(proc, () => stderr);
    // The file took effect: its second tenant's token is accepted.
    const token = config.tokens?.[0] ?? (config.tenants?.[0]?.tokenFile ? readFileSync(config.tenants[0].tokenFile, "utf8").trim() : undefined);
    expect(token, "a config block in the README names a second tenant's token (tokens or tenants[0].tokenFile)").toBeDefined();
    expect(await Sandbox.list({ url, token })).toEqual([]);
  } finally {
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    }
    await removeStateDir(dir);
  }
}

describe.each(readmes)("%s", (file) => {
  for (const block of blocks.filter((b) => b.file === file)) {
    const rule = RULES[`${file} ${block.id}`];
    it(`${block.id} (line ${block.line}, ${block.lang || "no language"})`, { timeout: 240_000 }, async () => {
      switch (rule?.kind) {
        case "diagram":
          expect(block.lang).toBe("text");
          return;
        case "ci-commands":
          return checkCiCommands(block);
        case "output-of": {
          const { stdout } = await run(process.execPath, [tsx, rule.example], { cwd: join(repo, "examples"), env: env(), timeout: 90_000 });
          expect(stdout).toMatch(outputPattern(block.code, rule.placeholders));
          return;
        }
        case "cli-synopsis":
          return checkCliSynopsis(block);
        case "daemon-config":
          return checkDaemonConfig(block, rule.placeholders);
        default:
          await runBlock(block, 180_000);
          if (rule?.kind === "run") await rule.after();
      }
    });
  }
});

describe("links", () => {
  it.each(["README.md", "SECURITY.md", "CONTRIBUTING.md", "deploy/systemd/README.md", ...readmes.filter((f) => f !== "README.md")])("%s links only to files inside the repository that exist", (file) => {
    const text = readFileSync(join(repo, file), "utf8");
    const targets = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((t) => !/^(https?:|mailto:|#)/.test(t));
    for (const target of targets) {
      const path = resolve(dirname(join(repo, file)), target.replace(/#.*$/, ""));
      expect(relative(repo, path).startsWith(".."), `${file} links outside the repository: ${target}`).toBe(false);
      expect(existsSync(path), `${file} links to ${target}, which does not exist`).toBe(true);
    }
  });

  it("the README's layout table names every folder of the repository (below a test folder, the tree mirrors the source)", () => {
    const section = readFileSync(join(repo, "README.md"), "utf8").split("\n## Layout\n")[1]!.split("\n## ")[0]!;
    // Each row: its path (first cell, without a trailing slash) and its whole text.
    const rows = [...section.matchAll(/^\| `([^`]+)` \|(.*)$/gm)].map((m) => ({ path: m[1]!.replace(/\/$/, ""), text: m[2]! }));
    expect(rows.length).toBeGreaterThan(10);
    const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { cwd: repo, encoding: "utf8" }).split("\n").filter(Boolean);
    const folders = new Set<string>();
    for (const file of files) {
      const parts = file.split("/").slice(0, -1);
      for (let i = 1; i <= parts.length; i++) folders.add(parts.slice(0, i).join("/"));
    }
    const named = (folder: string) =>
      rows.some(({ path, text }) => folder === path || (folder.startsWith(`${path}/`) && (text.includes(`\`${folder.slice(path.length + 1)}/\``) || text.includes(`\`${folder}/\``))));
    const underTests = (folder: string) => /(^|\/)(test|tests)\/./.test(folder);
    const missing = [...folders].filter((f) => !underTests(f) && !named(f)).sort();
    expect(missing, "folders the README's layout table does not name").toEqual([]);
  });

  it("every test SECURITY.md cites exists", () => {
    const text = readFileSync(join(repo, "SECURITY.md"), "utf8");
    const cited = [...text.matchAll(/`([\w./-]+\.(?:test\.ts|py))`/g)].map((m) => m[1]!);
    expect(cited.length).toBeGreaterThan(20);
    const all = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "packages"], { cwd: repo, encoding: "utf8" }).split("\n");
    for (const name of cited) {
      // A full path, or a file name whose full path the same table gave before.
      const found = name.includes("/") ? all.includes(name) : all.some((f) => f.endsWith(`/${name}`));
      expect(found, `SECURITY.md cites ${name}, which is not in the repository`).toBe(true);
    }
  });
});
