// deploy/systemd/sbx.service, as systemd would run it (issue 16 item 12). This machine has no
// systemd as PID 1, so the unit is checked in the two ways that do not need one: systemd-analyze
// verifies it (syntax, known settings, executables), and its commands run here under what the
// unit imposes on them (the capability bounding set, no_new_privs, LimitNOFILE), with the
// checkout's CLI in place of /usr/local/bin/sbx and a scratch config and state dir: the host
// check passes, the daemon serves `sbx doctor`'s end-to-end checks, and the unit's KillSignal
// stops it within TimeoutStopSec, leaving no sandbox behind.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, removeStateDir, waitForListening } from "../helpers/daemon.js";
import { waitFor } from "../helpers/bash.js";

const UNIT = fileURLToPath(new URL("../../../../deploy/systemd/sbx.service", import.meta.url));
const INSTALLED = "/usr/local/bin/sbx";
const isRoot = process.getuid?.() === 0;

/** The unit's [Service] settings; a setting given twice keeps every value, in order. */
function serviceSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    if (section !== "Service") continue;
    const eq = line.indexOf("=");
    const key = line.slice(0, eq);
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1)]);
  }
  return settings;
}

const unitText = readFileSync(UNIT, "utf8");
const service = serviceSettings(unitText);
const one = (key: string): string => {
  const values = service.get(key);
  if (values?.length !== 1) throw new Error(`sbx.service: expected one ${key}=, found ${values?.length ?? 0}`);
  return values[0]!;
};

const scratch = mkdtempSync(join(tmpdir(), "sbx-unit-"));
chmodSync(scratch, 0o711); // as /var/lib is: sandbox uids traverse to the state dir's lib/
const stateDir = join(scratch, "state");
const configFile = join(scratch, "config.json");
writeFileSync(configFile, JSON.stringify({ listen: "127.0.0.1:0", warmPool: 0 }));
// What systemd would exec, with this checkout's CLI installed at the unit's path.
const wrapper = join(scratch, "sbx");
writeFileSync(wrapper, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`);
chmodSync(wrapper, 0o755);

/** A unit command line as argv, pointed at the scratch install, config and state dir. */
function argvOf(command: string): string[] {
  const argv = command.split(/\s+/).map((word) => word.replace("/etc/sbx/config.json", configFile).replace("/var/lib/sbx", stateDir));
  expect(argv[0]).toBe(INSTALLED);
  return [wrapper, ...argv.slice(1)];
}

/** setpriv applying the unit's CapabilityBoundingSet and NoNewPrivileges, as systemd does before exec. */
function confined(argv: string[]): string[] {
  const caps = one("CapabilityBoundingSet").split(/\s+/).map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`);
  const nnp = one("NoNewPrivileges") === "yes" ? ["--no-new-privs"] : [];
  return ["setpriv", `--bounding-set=-all,${caps.join(",")}`, `--inh-caps=-all`, ...nnp, ...argv];
}

afterAll(async () => {
  await removeStateDir(stateDir).catch(() => {});
  rmSync(scratch, { recursive: true, force: true });
});

describe("deploy/systemd/sbx.service", () => {
  it("passes systemd-analyze verify with the CLI installed where it says", (ctx) => {
    const analyze = spawnSync("systemd-analyze", ["--version"]);
    if (analyze.error) return ctx.skip("systemd-analyze is missing (Debian's systemd package has it; .ci/run installs it)");
    const copy = join(scratch, "sbx.service");
    writeFileSync(copy, unitText.replaceAll(INSTALLED, wrapper));
    const res = spawnSync("systemd-analyze", ["verify", copy], { encoding: "utf8" });
    expect(res.stderr + res.stdout).toBe("");
    expect(res.status).toBe(0);
  });

  it("names one ExecStart that runs the daemon with a config and a state dir, and a stop that ends its sandboxes first", () => {
    const start = one("ExecStart");
    expect(start).toMatch(/ daemon /);
    expect(start).toContain("--config /etc/sbx/config.json");
    expect(start).toContain("--state-dir /var/lib/sbx");
    expect(one("KillSignal")).toBe("SIGTERM");
    expect(one("KillMode")).toBe("mixed");
    // The state dir holds the token, the CA key and the owner keys of sandboxes: nobody else reads it.
    expect(one("StateDirectoryMode")).toBe("0700");
  });

  it(
    "(as root, as systemd runs it) its commands work under its capability bounding set and no_new_privs: host check, end-to-end doctor, stop on KillSignal within TimeoutStopSec",
    async (ctx) => {
      if (!isRoot) return ctx.skip("the unit's commands run as root under its bounding set: the test must run as root (pnpm test does)");
      const pre = spawnSync(confined(argvOf(one("ExecStartPre")))[0]!, confined(argvOf(one("ExecStartPre"))).slice(1), { encoding: "utf8" });
      expect(pre.status, pre.stdout + pre.stderr).toBe(0);

      const argv = confined(argvOf(one("ExecStart")));
      // The unit's LimitNOFILE, or this machine's hard limit where lower (raising it needs
      // CAP_SYS_RESOURCE, which the VMs running these tests do not grant even to root).
      const nofile = Math.min(Number(one("LimitNOFILE")), hardNofile());
      const daemon = spawn("prlimit", [`--nofile=${nofile}:${nofile}`, "--", ...argv], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      daemon.stderr!.on("data", (d) => (stderr += d));
      const url = await waitForListening(daemon, () => stderr);
      // --log-format json: every line the daemon logs is one JSON object.
      for (const line of stderr.trim().split("\n")) expect(() => JSON.parse(line), line).not.toThrow();
      const status = readFileSync(`/proc/${daemonPid()}/status`, "utf8");
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);

      const token = readFileSync(join(stateDir, "token"), "utf8").trim();
      const doctor = spawnSync(wrapper, ["doctor", "--url", url, "--token", token], { encoding: "utf8", timeout: 120_000 });
      expect(doctor.status, doctor.stdout + doctor.stderr).toBe(0);
      expect(doctor.stdout).toMatch(/seccomp/i);

      // Leave a sandbox running: the stop must end it, not strand it.
      const { Sandbox } = await import("@sbx/client");
      const sandbox = await Sandbox.create({ url, token });
      const pidInside = (await sandbox.sh`sleep 600 >/dev/null 2>&1 & echo $!`.text()).trim();
      expect(pidInside).toMatch(/^\d+$/);
      const hostPids = await waitFor("the sandbox's sleep on the host", () => sleepers().length > 0 && sleepers());

      const stopMs = Number(one("TimeoutStopSec")) * 1000;
      const started = Date.now();
      const exited = new Promise<number | null>((resolve) => daemon.once("exit", (code) => resolve(code)));
      process.kill(daemonPid(), one("KillSignal") as NodeJS.Signals);
      const code = await exited;
      expect(Date.now() - started).toBeLessThan(stopMs);
      expect(code).toBe(0);
      expect(hostPids.filter((pid) => existsSync(`/proc/${pid}`))).toEqual([]);
      expect(existsSync(join(stateDir, "daemon.pid"))).toBe(false);
    },
    180_000,
  );
});

function hardNofile(): number {
  const limits = readFileSync("/proc/self/limits", "utf8");
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(limits)![1]!;
  return hard === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(hard);
}

/** The daemon's pid (prlimit and setpriv exec it in place, so it is the child's). */
function daemonPid(): number {
  return Number(readFileSync(join(stateDir, "daemon.pid"), "utf8").trim());
}

/** Host pids of the `sleep 600` the test left running in its sandbox. */
function sleepers(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("sleep\u0000600")) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
