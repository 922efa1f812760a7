/**
 * Rootless mode: the daemon runs as an ordinary user (as on a laptop). As root, this test makes
 * such a user, copies the self-contained CLI, native supervisor and Node preload somewhere that user can read, and
 * runs the real daemon as it: unprivileged user namespaces, seccomp and rlimits, no cgroups.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, Sandbox, UnsupportedError } from "@sbx/client";
import { waitForListening } from "../helpers/daemon.js";
import { systemUser, type SystemUser } from "../helpers/users.js";
import { startUpstreams, type Upstreams } from "../helpers/upstreams.js";

const USER = "sbx-rootless";
const dist = fileURLToPath(new URL("../../dist/", import.meta.url));
let dir: string;
let user: SystemUser | undefined;
let uid: number;
let daemon: ChildProcess;
let logs = "";
let opts: { url: string; token: string };
let up: Upstreams;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("this test sets up an unprivileged user and must run as root (CI does)");
  user = systemUser(USER);
  uid = user.uid;
  dir = mkdtempSync(join(tmpdir(), "sbx-rootless-"));
  chmodSync(dir, 0o755);
  // dist/ whole, as a user would copy it: whatever the daemon needs beside its cli.js is there.
  cpSync(dist, dir, { recursive: true });
  const state = join(dir, "state");
  execFileSync("install", ["-d", "-m", "0700", "-o", String(uid), "-g", String(uid), state]);
  // Local upstreams (run by root, on loopback) for the secrets test, with their CA where the user can read it.
  up = await startUpstreams();
  writeFileSync(join(dir, "test-ca.pem"), up.caPem);
  chownSync(dir, uid, uid);
  const egress = ["--resolve", `api.example.test:443=127.0.0.1:${up.httpsPort}`, "--extra-ca", join(dir, "test-ca.pem")];
  daemon = spawn(process.execPath, [join(dir, "cli.js"), "daemon", "--listen", "127.0.0.1:0", "--state-dir", state, ...egress], {
    uid,
    gid: uid,
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: dir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  daemon.stderr!.on("data", (d) => (logs += d));
  const url = await waitForListening(daemon, () => logs);
  opts = { url, token: readFileSync(join(state, "token"), "utf8").trim() };
});

afterAll(async () => {
  if (daemon && daemon.exitCode === null) {
    const exited = new Promise((r) => daemon.once("exit", r));
    daemon.kill("SIGTERM");
    await exited;
  }
  await up?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  // The suite leaves no user behind (the daemon and its sandboxes are gone by now).
  await user?.remove();
});

describe("rootless mode (daemon as an unprivileged user)", () => {
  it("says which limits it cannot enforce: in its log, and to the caller that asked for one (issue 18 item 6)", async () => {
    expect(logs).toMatch(/rootless mode: seccomp and rlimits; memory, CPU and pids caps are not enforced without cgroups/);
    await using plain = await Sandbox.create({ ...opts, timeout: "1m" });
    expect(plain.warnings).toEqual([]);
    await using limited = await Sandbox.create({ ...opts, timeout: "1m", memory: "256MiB", cpus: 0.5, disk: "64MiB" });
    expect(limited.warnings).toEqual([
      'memory: not enforced: this daemon runs rootless (without cgroups), so memory "256MiB" is not a limit here; run the daemon as root for enforced limits',
      "cpus: not enforced: this daemon runs rootless (without cgroups), so cpus 0.5 is not a limit here; run the daemon as root for enforced limits",
      'disk: approximate: rootless sandboxes keep /home/sandbox and /tmp in memory (tmpfs), each capped at "64MiB"',
    ]);
  });

  it("refuses volumes, snapshots and booting from them clearly: they are loop-mounted images, which need root mode (issue 15)", async () => {
    const why = "volumes need the daemon in root mode: each is an ext4 image the daemon loop-mounts, and a rootless daemon cannot mount (run the daemon as root)";
    const client = new Client(opts);
    await using sb = await Sandbox.create({ ...opts, timeout: "1m" });
    for (const attempt of [() => client.volumes.create({ slug: "data", capacity: "16MiB" }), () => client.volumes.list(), () => client.snapshots.get("x1"), () => Sandbox.create({ ...opts, volumes: { "/data": "data" } }), () => Sandbox.create({ ...opts, root: "img" }), () => sb.snapshot({ slug: "x2" })]) {
      const err = await attempt().then(() => null, (e: unknown) => e as Error);
      expect(err).toBeInstanceOf(UnsupportedError);
      expect(err!.message).toBe(why);
    }
  });

  it("runs sandboxes as uid 1000 inside, mapped to the daemon's own unprivileged uid", async () => {
    await using sb = await Sandbox.create({ ...opts, timeout: "1m" });
    const out = await sb.sh`id -u; cat /proc/self/uid_map | awk '{print $1}'; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status | awk '{print $2}'`.text();
    expect(out.split("\n")).toEqual(["1000", "1000", "0000000000000000", "1", "2", ""]);
    const name = `rootless-${Date.now()}`;
    const sleeper = await sb.spawn("python3", { args: ["-c", "import time; time.sleep(30)", name] });
    try {
      const pids = execFileSync("pgrep", ["-f", `time.sleep\\(30\\) ${name}`], { encoding: "utf8" }).trim().split("\n");
      const hostUid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pids[0]}/status`, "utf8"))![1]);
      expect(hostUid).toBe(uid);
    } finally {
      await sleeper.kill("SIGKILL");
    }
  });

  it("keeps the seccomp filter and the open-files rlimit", async () => {
    await using sb = await Sandbox.create({ ...opts, timeout: "1m" });
    expect(await sb.sh`ulimit -n`.text()).toBe("4096\n");
    const unshare = await sb.sh`unshare -Ur true`.noThrow();
    expect(unshare.status.success).toBe(false);
  });

  it("runs processes, moves files and meters usage approximately", async () => {
    await using sb = await Sandbox.create({ ...opts, timeout: "1m" });
    await sb.fs.writeTextFile("note.txt", "rootless");
    expect(await sb.sh`cat note.txt && python3 -c 'print(6*7)'`.text()).toBe("rootless42\n");
    // Half a second of CPU time (not wall time: the machine may be busy).
    await sb.sh`python3 -c 'import time\nwhile time.process_time() < 0.5: pass'`;
    const usage = await sb.usage();
    expect(usage.approximate).toBe(true);
    expect(usage.cpuSeconds).toBeGreaterThan(0.3);
    expect(usage.status).toBe("running");
  });

  it("intercepts TLS for a secret's host with the daemon's own CA, kept 0600 by the daemon's user", async () => {
    const value = "sk-rootless-0123456789abcdef";
    await using sb = await Sandbox.create({ ...opts, timeout: "1m", secrets: { KEY: { hosts: ["api.example.test"], value } } });
    const echoed = JSON.parse(await sb.sh`curl -sS --fail -H "Authorization: Bearer $KEY" https://api.example.test/echo/rootless`.text());
    expect(echoed.headers.authorization).toMatch(/^Bearer SBX_SECRET_[0-9A-Za-z]{32}$/);
    expect(up.seen.find((r) => r.path === "/echo/rootless")!.headers.authorization).toBe(`Bearer ${value}`);
    const key = statSync(join(dir, "state", "ca", "ca.key"));
    expect([key.uid, key.mode & 0o777]).toEqual([uid, 0o600]);
    expect(logs).not.toContain(value);
  });

  it("caps each of /home/sandbox (and its alias /home/user) and /tmp at the disk size (approximate: per mount)", async () => {
    await using sb = await Sandbox.create({ ...opts, timeout: "1m", disk: "8MiB" });
    const res = await sb.sh`head -c 16M /dev/zero > /home/user/big`.noThrow();
    expect(res.status.success).toBe(false);
    expect(res.stderrText).toMatch(/No space left on device/);
  });
});
