import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { ETC_SHARED } from "../../src/sandbox/etc.js";
import { ok, runBash, waitFor } from "../helpers/bash.js";
import { requires, useDaemon, useSandbox } from "../helpers/fixtures.js";

/**
 * The /etc a sandbox sees is one daemon-made copy bound once (sandbox/etc-view.ts): the same
 * files the per-entry binds showed, read-only, kept current with the host's, and out of every
 * sandbox uid's reach on the host.
 */

const ROOT = process.getuid?.() === 0;

/**
 * What of /etc's shared entries `sh` lists when run as an unprivileged uid (on the host) or as
 * the sandbox's user (inside): every directory, link (with its target) and regular file it may
 * read, top-level links followed as the per-entry binds followed them, and each file's digest.
 * The system CA bundle is left out: the daemon binds its own over it (the trust tests check that).
 */
function listing(names: string[]): string {
  const q = names.map((n) => `'${n}'`).join(" ");
  return `cd /etc && ls -d ${q} 2>/dev/null | xargs -r sh -c 'find -H "$@" -readable \\( -type d -printf "d %p\\n" -o -type l -printf "l %p -> %l\\n" -o -type f -printf "f %p\\n" \\) 2>/dev/null; find -H "$@" -type f -readable ! -path ssl/certs/ca-certificates.crt -exec sha256sum {} + 2>/dev/null' sh | LC_ALL=C sort`;
}

describe("what a sandbox sees of the host's /etc", () => {
  const { daemon, sb } = useSandbox();
  requires(ROOT, "it lists the host's /etc as an unprivileged uid (setpriv): it must run as root (pnpm test does)");

  it("is what the per-entry binds showed: every shared entry and linked path an unprivileged uid may read, with the same bytes", async () => {
    const linked = /sandboxes see \d+ more host \/etc paths that links from \/usr lead to: (.*)$/m.exec(daemon.logs())?.[1]?.split(", ") ?? [];
    const names = [...ETC_SHARED, ...linked.map((p) => p.slice("/etc/".length))];
    const [uid] = daemon.uids!;
    const host = spawnSync("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sh", "-c", listing(names)], { encoding: "utf8" });
    expect(host.status).toBe(0);
    const inside = ok(await runBash(sb, listing(names)), "listing");
    expect(inside.split("\n").length).toBeGreaterThan(100); // ssl, alternatives, ld.so.cache...
    expect(inside).toBe(host.stdout);
  });

  it("holds the sandbox's own passwd, group and hosts, and nothing the shared list leaves out", async () => {
    expect(ok(await runBash(sb, "cat /etc/passwd"), "cat")).toMatch(/^user:x:1000:1000:sandbox user:/m);
    expect(ok(await runBash(sb, "cat /etc/hosts"), "cat")).toMatch(/^127\.0\.0\.1\tlocalhost$/m);
    const linked = /sandboxes see \d+ more host \/etc paths that links from \/usr lead to: (.*)$/m.exec(daemon.logs())?.[1]?.split(", ") ?? [];
    const allowed = new Set([...ETC_SHARED, "passwd", "group", "hosts", ...linked.map((p) => p.split("/")[2]!)]);
    const names = ok(await runBash(sb, "ls -A /etc"), "ls").trim().split("\n");
    expect(names.filter((n) => !allowed.has(n))).toEqual([]);
    expect(names).toEqual(expect.arrayContaining(["ld.so.cache", "ssl", "passwd", "group", "hosts"]));
  });

  it("is read-only inside, one mount, and nothing done inside reaches the daemon's copy", async () => {
    const r = await runBash(
      sb,
      "for c in 'echo x >> /etc/timezone' 'touch /etc/sbx-new' 'rm -f /etc/shells' 'chmod 666 /etc/shells' 'mv /etc/ssl /etc/moved' 'ln -s / /etc/root-link' 'mkdir /etc/d'; do sh -c \"$c\" 2>/dev/null && echo \"allowed: $c\"; done; awk '$5 == \"/etc\" { print $6 }' /proc/self/mountinfo; awk '$5 ~ /^\\/etc\\// { print $5 }' /proc/self/mountinfo",
    );
    expect(r.code).toBe(0);
    // No command was allowed; /etc is one read-only mount, with the sandbox's own files and the daemon's CA bundle over it.
    const lines = r.out.trim().split("\n");
    expect(lines[0]).toMatch(/^ro,/);
    const bundle = existsSync("/etc/ssl/certs/ca-certificates.crt") ? ["/etc/ssl/certs/ca-certificates.crt"] : [];
    expect(lines.slice(1).sort()).toEqual(["/etc/group", "/etc/hosts", "/etc/passwd", ...bundle]);
    const gens = readdirSync(join(daemon.stateDir, "etc"));
    expect(gens).toHaveLength(1);
    const copy = join(daemon.stateDir, "etc", gens[0]!);
    expect(readFileSync(join(copy, "shells"), "utf8")).toBe(readFileSync("/etc/shells", "utf8"));
    expect(readdirSync(copy)).not.toContain("sbx-new");
  });

  it("the daemon's copy on the host cannot be changed by a sandbox's uid", async () => {
    const [uid, last] = daemon.uids!;
    const copy = join(daemon.stateDir, "etc", readdirSync(join(daemon.stateDir, "etc"))[0]!);
    for (const u of [uid, last]) {
      const as = (script: string) => spawnSync("setpriv", [`--reuid=${u}`, `--regid=${u}`, "--clear-groups", "sh", "-c", script]).status;
      expect(as(`ls ${join(daemon.stateDir, "etc")}`)).not.toBe(0);
      for (const attack of [`echo x >> ${copy}/shells`, `touch ${copy}/new`, `rm -f ${copy}/shells`, `chmod 666 ${copy}/shells`, `mv ${copy}/ssl ${copy}/moved`, `ln -s /etc/shadow ${copy}/ssl/s`]) {
        expect(as(attack), attack).not.toBe(0);
      }
    }
    expect(readFileSync(join(copy, "shells"), "utf8")).toBe(readFileSync("/etc/shells", "utf8"));
  });
});

describe("a change to the host's /etc", () => {
  requires(ROOT, "it copies the host's /etc entries to stand in for it: it must run as root (pnpm test does)");
  // A copy of the host's shared entries stands in for /etc (SBX_TEST_ETC_ROOT): the real one is never touched.
  let fake = "";
  beforeAll(() => {
    if (!ROOT) return;
    const dir = mkdtempSync(join(tmpdir(), "sbx-etc-root-"));
    chmodSync(dir, 0o755);
    fake = join(dir, "etc");
    spawnSync("mkdir", ["-m", "0755", fake]);
    const present = ETC_SHARED.filter((n) => spawnSync("test", ["-e", `/etc/${n}`]).status === 0);
    const cp = spawnSync("cp", ["-a", ...present.map((n) => `/etc/${n}`), fake], { encoding: "utf8" });
    if (cp.status !== 0) throw new Error(`cp: ${cp.stderr}`);
  });
  afterAll(() => {
    if (fake) rmSync(join(fake, ".."), { recursive: true, force: true });
  });
  const daemon = useDaemon(() => ({ config: { warmPool: 1 }, env: { SBX_TEST_ETC_ROOT: fake } }));

  it("shows in sandboxes created after it, a pooled one started before is not handed out, and running ones keep theirs", async () => {
    const before = await Sandbox.create(daemon.opts);
    try {
      expect(ok(await runBash(before, "cat /etc/shells"), "cat")).toBe(readFileSync("/etc/shells", "utf8"));
      // The pool's sandbox is ready (started with the view as it is now).
      await waitFor("the pool to be refilled", () => /ready in the warm pool/.test(daemon.logs()), 15_000);
      const from = daemon.logs().length;
      writeFileSync(join(fake, "shells"), "/bin/sh\n/usr/bin/sbx-test-shell\n");
      writeFileSync(join(fake, "ssl", "certs", "sbx-test.pem"), "test\n");
      await waitFor("the rebuild", () => /rebuilt the \/etc view/.test(daemon.logs().slice(from)), 5000);
      await waitFor("the stale pooled sandbox to go", () => /ended 1 pooled sandboxes started with an \/etc the host has since changed/.test(daemon.logs().slice(from)), 5000);
      await using after = await Sandbox.create(daemon.opts);
      expect(ok(await runBash(after, "cat /etc/shells /etc/ssl/certs/sbx-test.pem"), "cat")).toBe("/bin/sh\n/usr/bin/sbx-test-shell\ntest\n");
      // The one started before still sees what it started with.
      expect(ok(await runBash(before, "cat /etc/shells; test -e /etc/ssl/certs/sbx-test.pem || echo absent"), "cat")).toBe(`${readFileSync("/etc/shells", "utf8")}absent\n`);
      expect(readdirSync(join(daemon.stateDir, "etc"))).toHaveLength(2);
    } finally {
      await before.kill();
    }
    // Its generation goes with the last sandbox holding it.
    await waitFor("the old generation to be removed", () => readdirSync(join(daemon.stateDir, "etc")).length === 1, 5000);
  });

  it("a file replaced by rename (as package managers and editors do) shows too", async () => {
    const from = daemon.logs().length;
    writeFileSync(join(fake, "timezone.new"), "Antarctica/Troll\n");
    spawnSync("mv", [join(fake, "timezone.new"), join(fake, "timezone")]);
    await waitFor("the rebuild", () => /rebuilt the \/etc view/.test(daemon.logs().slice(from)), 5000);
    await using sb = await Sandbox.create(daemon.opts);
    expect(ok(await runBash(sb, "cat /etc/timezone"), "cat")).toBe("Antarctica/Troll\n");
  });
});
