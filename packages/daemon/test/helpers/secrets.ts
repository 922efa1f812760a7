/**
 * Secrets end to end, shared by the files in test/egress/secrets/*.integration.test.ts: a real
 * daemon, real bwrap, real tools inside, and local upstreams by real-looking names
 * (api.openai.com, api.anthropic.com, ...) pinned with `egress.resolve`. The sandbox holds only
 * placeholders; the proxy intercepts TLS to each secret's hosts with the daemon's CA (which
 * every tool inside trusts with no setup), puts the value in where it may, refuses every other
 * place a placeholder turns up, and scrubs values out of what comes back. Opaque tunnels to
 * other hosts are verified with the upstreams' test CA, which the daemon also trusts
 * (egress.extraCaCerts) to verify the secret hosts' upstream side.
 *
 * Each file has one daemon and one sandbox (`useSecretsSandbox`), and ends with
 * `describeAccountingAndLeaks`: every refusal it saw counted and logged, then every value used
 * anywhere in the file looked for inside the sandbox, in the daemon's logs and in its state dir.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EgressEvent, SandboxOptions } from "@sbx/client";
import { runBash } from "./bash.js";
import { isThere, standIn, useSandbox } from "./fixtures.js";
import { rawRequests, type RawRequest, type RawResponse } from "./raw-http.js";
import { startUpstreams, type SeenRequest, type Upstreams } from "./upstreams.js";

const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export const rand = (n: number) => [...randomBytes(n)].map((b) => B62[b % 62]).join("");

/** Every secret value a file hands the daemon, valid or not: none may ever show up outside daemon memory. */
export const VALUES: string[] = [];
export const value = (v: string) => (VALUES.push(v), v);

export const OPENAI = value(`sk-proj-${rand(48)}`);
export const ANTHROPIC = value(`sk-ant-api03-${rand(48)}`);
export const GIT = value(`ghp_${rand(36)}`);
export const PYPI = value(`pypi-${rand(48)}`);
/** A value with characters some JSON writers (\/) and every URL encoder rewrite. */
export const QUOTED = value(`tok/en+${rand(32)}=`);

export const SECRETS = {
  OPENAI_KEY: { hosts: ["api.openai.com"], value: OPENAI },
  ANTHROPIC_KEY: { hosts: ["api.anthropic.com"], value: ANTHROPIC, body: true },
  GIT_TOKEN: { hosts: ["git.example.test"], value: GIT },
  PYPI_TOKEN: { hosts: ["pypi.example.test", "files.pythonhosted.test"], value: PYPI },
  QUOTED_KEY: { hosts: ["api.openai.com"], value: QUOTED },
  /** Bound to a host whose server shows a self-signed certificate nobody trusts. */
  IMPOSTOR_KEY: { hosts: ["api.impostor.test"], value: value(`imp-${rand(32)}`) },
  /** Bound to a name the (trusted) upstream's certificate does not list. */
  UNLISTED_KEY: { hosts: ["unlisted.example.test"], value: value(`unl-${rand(32)}`) },
} satisfies NonNullable<SandboxOptions["secrets"]>;
export type SecretName = keyof typeof SECRETS;
export const SANDBOX_VALUES = Object.values(SECRETS).map((s) => s.value);

export const PLACEHOLDER_RE = /^SBX_SECRET_[0-9A-Za-z]{32}$/;
/** Where the upstreams' test CA goes inside, for opaque tunnels (curl --cacert). */
export const TEST_CA = "/home/user/test-ca.pem";
export const ALLOW = ["api.example.test", "other.example.test", "tcp.example.test"];

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  const port = await new Promise<number>((r) => probe.listen(0, "127.0.0.1", () => r((probe.address() as AddressInfo).port)));
  await new Promise((r) => probe.close(r));
  return port;
}

const formsOf = new Map<string, string[]>();
/** The forms of a value the proxy promises to scrub: itself, its base64 at each alignment (standard and URL-safe) and its hex (both cases). */
export function forms(v: string): string[] {
  const known = formsOf.get(v);
  if (known) return known;
  const bytes = Buffer.from(v, "utf8");
  const out = new Set([v]);
  for (let k = 0; k < 3; k++) {
    const enc = Buffer.concat([Buffer.alloc(k), bytes]).toString("base64");
    // only the characters that depend on the value's bytes alone
    const core = enc.slice(Math.ceil((4 * k) / 3), Math.floor(((k + bytes.length) * 8) / 6));
    out.add(core);
    out.add(core.replace(/\+/g, "-").replace(/\//g, "_"));
  }
  out.add(bytes.toString("hex")).add(bytes.toString("hex").toUpperCase());
  formsOf.set(v, [...out]);
  return [...out];
}

/** `text` holds no value of this file in any form the proxy scrubs. */
export function expectNoValue(text: string, what = "text"): void {
  for (const v of VALUES) for (const f of forms(v)) expect(text.includes(f), `${what} holds a secret value (form ${f.slice(0, 6)}...)`).toBe(false);
}

/** Every regular file below `root` (not following symlinks, skipping sockets, FIFOs and devices). */
async function* filesBelow(root: string): AsyncGenerator<string> {
  for (const e of await readdir(root, { withFileTypes: true })) {
    const path = join(root, e.name);
    if (e.isDirectory()) yield* filesBelow(path);
    else if (e.isFile()) yield path;
  }
}

/** Which of `needles` the file holds, read as bytes in a stream (a needle across two reads is found too). */
async function needlesIn(path: string, needles: Buffer[]): Promise<number[]> {
  const keep = Math.max(...needles.map((n) => n.length)) - 1;
  const found = new Set<number>();
  let tail = Buffer.alloc(0);
  for await (const piece of createReadStream(path, { highWaterMark: 4 << 20 }) as AsyncIterable<Buffer>) {
    const buf = tail.length ? Buffer.concat([tail, piece]) : piece;
    needles.forEach((n, i) => {
      if (!found.has(i) && buf.indexOf(n) !== -1) found.add(i);
    });
    tail = Buffer.from(buf.subarray(Math.max(0, buf.length - keep)));
  }
  return [...found];
}

/** Every regular file below `root` it read, and "path: value #i" for each value of the file found in one. */
export async function valuesBelow(root: string, values: string[] = VALUES): Promise<{ hits: string[]; files: string[] }> {
  const needles = values.map((v) => Buffer.from(v, "utf8"));
  const hits: string[] = [];
  const files: string[] = [];
  for await (const path of filesBelow(root)) {
    files.push(path);
    for (const i of await needlesIn(path, needles)) hits.push(`${path}: value #${i}`);
  }
  return { hits, files };
}

/** What a file's tests reach: the daemon, the sandbox holding SECRETS, the upstreams, and helpers bound to them. */
export type SecretsSandbox = ReturnType<typeof useSecretsSandbox>;

/** The file's daemon (no warm pool) and sandbox holding SECRETS, with the upstreams and raw TCP servers it reaches. */
export function useSecretsSandbox() {
  let up: Upstreams | undefined;
  let hostDir: string | undefined;
  /** An HTTPS server with a self-signed certificate for api.impostor.test. */
  let impostor: Server | undefined;
  /** Raw TCP upstreams for protocols other than HTTP: one that speaks first, one that records what it gets. */
  let banner: net.Server | undefined;
  let recorder: net.Server | undefined;
  let resolve: Record<string, string> = {};
  const recorded: Buffer[] = [];
  const counts = {
    /** Requests that reached the impostor. */
    impostorRequests: 0,
    /** Connections the recorder has seen end, however they ended. */
    recorderClosed: 0,
    /** Refusals answered for a secret that the file's tests saw (each one must be counted and logged). */
    refusalsSeen: 0,
    /** How many of the two final scans ran (afterAll runs them when a filter left them out). */
    finalScans: 0,
  };
  /** Each secret's placeholder, as the sandbox sees it. */
  const P = {} as Record<SecretName, string>;
  const missed: string[] = [];

  beforeAll(async () => {
    up = await startUpstreams();
    hostDir = mkdtempSync(join(tmpdir(), "sbx-secrets-test-"));
    writeFileSync(join(hostDir, "test-ca.pem"), up.caPem);
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=api.impostor.test", "-addext", "subjectAltName=DNS:api.impostor.test", "-keyout", join(hostDir, "impostor.key"), "-out", join(hostDir, "impostor.pem")], { stdio: "ignore" });
    const server = createHttpsServer({ key: readFileSync(join(hostDir, "impostor.key")), cert: readFileSync(join(hostDir, "impostor.pem")) }, (_req, res) => {
      counts.impostorRequests++;
      res.end("impostor\n");
    });
    impostor = server;
    const impostorPort = await new Promise<number>((r) => server.listen(0, "127.0.0.1", () => r((server.address() as AddressInfo).port)));
    banner = net.createServer((s) => s.end("220 tcp.example.test ready\r\n"));
    recorder = net.createServer((s) => {
      s.on("data", (d) => recorded.push(d)).on("end", () => s.end("bye\n"));
      s.on("error", () => {}).on("close", () => counts.recorderClosed++);
    });
    const listenTcp = (tcp: net.Server) => new Promise<number>((r) => tcp.listen(0, "127.0.0.1", () => r((tcp.address() as AddressInfo).port)));
    resolve = {
      ...up.resolve,
      "api.impostor.test:443": `127.0.0.1:${impostorPort}`,
      "unlisted.example.test:443": `127.0.0.1:${up.httpsPort}`,
      "tcp.example.test:2525": `127.0.0.1:${await listenTcp(banner)}`,
      "tcp.example.test:2222": `127.0.0.1:${await listenTcp(recorder)}`,
      "tcp.example.test:2999": `127.0.0.1:${await closedPort()}`,
    };
  });
  // registered before the daemon's hooks, so it runs after the daemon stopped
  afterAll(async () => {
    await up?.close();
    impostor?.close();
    banner?.close();
    recorder?.close();
    if (hostDir) rmSync(hostDir, { recursive: true, force: true });
    if (missed.length) throw new Error(`secret values found after the tests: ${missed.join("; ")}`);
  });
  const { daemon, sb } = useSandbox({
    // no warm pool and no storage stock (default-size 10 GiB images made ahead): every sandbox image below the state dir is one of this file's (and small), so all of them can be read through
    daemon: () => ({ config: { egress: { resolve, extraCaCerts: [join(hostDir!, "test-ca.pem")] }, storageStock: 0 }, args: ["--warm-pool", "0"] }),
    sandbox: { disk: "512MiB", allowNet: ALLOW, secrets: SECRETS },
    setup: async (sb) => {
      // The placeholders only: env.toObject also lists the base environment (PATH, DENO_NO_UPDATE_CHECK=1 ...).
      Object.assign(P, Object.fromEntries(Object.entries(await sb.env.toObject()).filter(([, v]) => v.startsWith("SBX_SECRET_"))));
      await sb.fs.writeTextFile(TEST_CA, up!.caPem);
    },
  });
  // registered after the sandbox's hooks, so it runs while the sandbox and the daemon are still up
  afterAll(async () => {
    if (isThere(daemon) && counts.finalScans < 2) {
      spawnSync("sync");
      missed.push(...(await leaks()).hits);
      if (isThere(sb)) await sb.kill().catch(() => {});
      await daemon.stop();
      missed.push(...(await leaks()).hits);
    }
  });

  const upstreams = standIn("upstreams", () => up);
  const run = (script: string, env?: Record<string, string>) => runBash(sb, script, { env });
  const seenAt = (path: string): SeenRequest[] => upstreams.seen.filter((s) => s.path === path);
  const seenUnder = (prefix: string): SeenRequest[] => upstreams.seen.filter((s) => s.path.startsWith(prefix));

  /** Runs `fn` and returns the egress decisions made meanwhile. */
  async function decisions(fn: () => Promise<unknown>): Promise<string[]> {
    const before = (await sb.egressLog()).length;
    await fn();
    return (await sb.egressLog()).slice(before).map((e) => `${e.allowed ? "allowed" : "blocked"} ${e.method} ${e.host}:${e.port}${e.secret ? ` (${e.secret})` : ""}`);
  }

  /** A 403 the proxy answered for `secret` toward `hostPort`: names both in X-Sbx-Error and the body, and no value anywhere. */
  function expectSecretRefusal(res: RawResponse, secret: SecretName, hostPort: string, reason?: RegExp): void {
    expect(res.status, res.raw).toBe(403);
    const why = res.headers["x-sbx-error"] ?? "";
    expect(why).toContain(`secret ${secret} `);
    expect(why).toContain(hostPort);
    if (reason) expect(why).toMatch(reason);
    expect(res.body).toBe(`sbx egress proxy: ${why}\n`);
    expect(res.headers["connection"]).toBe("close");
    expectNoValue(res.raw, "the refusal");
    counts.refusalsSeen++;
  }

  const raw = (requests: RawRequest[]) => rawRequests(sb, requests);

  /** The daemon's output as captured: stderr (its log) and stdout. */
  const daemonOutput = () => `${daemon.logs()}\n${daemon.stdout()}`;

  /** Looks for every value (and its base64 forms) in the daemon's output, and for every value in each file below its state dir. */
  async function leaks(): Promise<{ hits: string[]; files: string[] }> {
    const { hits, files } = await valuesBelow(daemon.stateDir);
    const output = daemonOutput();
    VALUES.forEach((v, i) => {
      if (forms(v).some((f) => output.includes(f))) hits.push(`the daemon's output: value #${i}`);
    });
    return { hits, files };
  }

  return { daemon, sb, up: upstreams, P, recorded, counts, hostDir: () => hostDir!, run, seenAt, seenUnder, decisions, expectSecretRefusal, raw, daemonOutput, leaks };
}

export interface AccountingChecks {
  /** More to check of the egress log's refusals for a secret and of the daemon's warnings about them. */
  refusals?: (bySecret: EgressEvent[], warned: string[]) => void;
  /** A line the daemon's output still holds once it stopped. */
  outputAfterStop?: RegExp;
  /** The value scan inside must have looked at more files than this: a fresh sandbox has about 45 (its /etc and /.sbx), the tools a file runs leave more. */
  filesInside?: number;
}

/**
 * The last tests of each file: every refusal it saw counted and logged, no value anywhere inside
 * the sandbox, and none in the daemon's output or anywhere under its state dir.
 */
export function describeAccountingAndLeaks(s: SecretsSandbox, checks: AccountingChecks = {}): void {
  const { daemon, sb, P, counts, run, daemonOutput, leaks } = s;
  describe("counting and logging", () => {
    it("every refusal is counted in usage().egress.blocked, logged with the secret's name (never its value), and warned in the daemon's log", async () => {
      const usage = await sb.usage();
      const log = await sb.egressLog();
      expect(usage.egress.blocked).toBe(log.filter((e) => !e.allowed).length);
      const bySecret = log.filter((e) => e.secret !== undefined);
      expect(bySecret.length).toBe(counts.refusalsSeen);
      expect(usage.egress.blocked).toBeGreaterThanOrEqual(counts.refusalsSeen);
      expect(bySecret.every((e) => !e.allowed && e.reason!.includes(`secret ${e.secret} `))).toBe(true);
      expectNoValue(JSON.stringify(log), "the egress log");
      for (const p of Object.values(P)) expect(JSON.stringify(log)).not.toContain(p);

      const warned = daemon.logs().split("\n").filter((l) => / warn sandbox \S+: egress refused a request carrying secret /.test(l));
      expect(warned.length).toBe(counts.refusalsSeen);
      checks.refusals?.(bySecret, warned);
      expectNoValue(daemonOutput(), "the daemon's output");
    });
  });

  describe("the value never reaches the sandbox", () => {
    it("no value in env, any /proc/*/environ or cmdline, or any file under /home/user, /tmp, /etc, /.sbx (after all the tools the file ran)", async () => {
      // each value goes in as two halves, joined only inside grep's pattern pipe, so nothing inside ever holds it whole;
      // a canary (not a secret) goes in the same way and is then planted in one place of each kind, to show grep looks there
      const env: Record<string, string> = {};
      const halves = (name: string, v: string) => {
        env[`${name}A`] = v.slice(0, v.length >> 1);
        env[`${name}B`] = v.slice(v.length >> 1);
        return `"$${name}A" "$${name}B"`;
      };
      const pairs = SANDBOX_VALUES.map((v, i) => halves(`SV${i}`, v)).join(" ");
      const canary = halves("CAN", `canary-${rand(40)}`);
      const script = `
pats() { printf '%s%s\\n' ${pairs} ${canary}; }
canary() { printf '%s%s' ${canary}; }
canary > /tmp/canary-file
(exec -a "$(canary)" sleep 60) & argv_pid=$!
CANARY="$(canary)" sleep 60 & env_pid=$!
# both canaries in place before anything is scanned (the exec -a may not have happened yet)
for i in $(seq 250); do grep -qaF "$(canary)" /proc/$argv_pid/cmdline 2>/dev/null && grep -qaF "$(canary)" /proc/$env_pid/environ 2>/dev/null && break; sleep 0.02; done
exec 3< <(pats); wait $!
exec 4< <(pats); wait $!
exec 5< <(pats); wait $!
echo "== env"; CANARY_ENV="$(canary)" env | grep -c -F -f /dev/fd/3; echo "exit=\${PIPESTATUS[1]}"
# -s, and "exit" from what was found: a process that ends while grep runs (its /proc entry gone) is no finding
echo "== proc"; found=$(grep -s -l -a -F -f /dev/fd/4 /proc/[0-9]*/environ /proc/[0-9]*/cmdline); [ -n "$found" ] && echo "$found"; [ -n "$found" ]; echo "exit=$?"
echo "== files"; grep -r -l -a -F -D skip -f /dev/fd/5 /home/user /tmp /etc /.sbx; echo "exit=$?"
echo "== seen"; ls /proc | grep -c '^[0-9]'; find /home/user /tmp /etc /.sbx -type f 2>/dev/null | wc -l
echo "== canaries"; echo "$argv_pid $env_pid"
kill $argv_pid $env_pid; rm /tmp/canary-file
`;
      const r = await run(script, env);
      const parts: Record<string, string> = {};
      for (const section of r.out.split(/^== /m).slice(1)) parts[section.slice(0, section.indexOf("\n"))] = section.slice(section.indexOf("\n") + 1);
      const [argvPid, envPid] = parts.canaries!.trim().split(" ");
      // the environment: the canary's variable only
      expect(parts.env).toBe("1\nexit=0\n");
      // every process: the canary's two places only
      expect(parts.proc!.split("\n").filter(Boolean).sort()).toEqual([`/proc/${argvPid}/cmdline`, `/proc/${envPid}/environ`, "exit=0"].sort());
      // every file: the canary's only; what the sandbox user cannot read at all (on Debian: /etc/ssl/private) is all grep may skip
      const unreadable = r.err.split("\n").filter(Boolean);
      expect(unreadable.every((l) => /^grep: \S+: Permission denied$/.test(l)), r.err).toBe(true);
      expect(parts.files).toBe(`/tmp/canary-file\nexit=${unreadable.length ? 2 : 0}\n`);
      // grep looked at something: several processes, and the files there are (in substitution's sandbox, the ones its tools left: the clone, pip's target, deno's)
      const [procs, files] = parts.seen!.trim().split("\n").map(Number);
      expect(procs).toBeGreaterThanOrEqual(5);
      expect(files).toBeGreaterThan(checks.filesInside ?? 30);
    });
  });

  describe("after everything: no value in the daemon's output or anywhere under its state dir", () => {
    it("the scanner finds a value straddling two reads (so the scans below mean something)", async () => {
      const needle = rand(40);
      const file = join(s.hostDir(), "scanner-check");
      writeFileSync(file, Buffer.concat([Buffer.alloc((4 << 20) - 17, 0x78), Buffer.from(needle), Buffer.alloc(100, 0x78)]));
      expect((await valuesBelow(s.hostDir(), [rand(40), needle])).hits).toEqual([`${file}: value #1`]);
      rmSync(file);
    });

    it("while the daemon runs (sandbox storage flushed: its mount and its disk image are read through)", async () => {
      spawnSync("sync");
      const { hits, files } = await leaks();
      counts.finalScans++;
      expect(hits).toEqual([]);
      // it read the CA key, the sandbox's disk image, and the sandbox's own files through its mount
      const stateDir = daemon.stateDir;
      expect(files).toContain(join(stateDir, "ca", "ca.key"));
      expect(files).toContain(join(stateDir, "mnt", `${sb.id}.img`));
      expect(files).toContain(join(stateDir, "mnt", sb.id, "home", TEST_CA.slice("/home/user/".length)));
    }, 60_000);

    it("after the sandbox is killed and the daemon stopped", async () => {
      await sb.kill();
      await daemon.stop();
      const { hits, files } = await leaks();
      counts.finalScans++;
      expect(hits).toEqual([]);
      expect(files).toContain(join(daemon.stateDir, "ca", "ca.key"));
      if (checks.outputAfterStop) expect(daemonOutput()).toMatch(checks.outputAfterStop);
    }, 60_000);
  });
}
