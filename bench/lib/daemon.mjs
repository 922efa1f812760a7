// A daemon of this bench: its own state dir and config file, its uid range read from daemon.json.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, sleep } from "./env.mjs";
import { CG_CONTROLLERS } from "./cgroups.mjs";
import { sandboxProcs, watchUids } from "./proc.mjs";

/**
 * Starts `sbx daemon` on a free port. `warmPool: 0` turns its pool off (config file key); `null`
 * leaves the daemon's default. Its uid range is whatever free range it claimed: never fixed here,
 * since a range overlapping another running daemon's is refused. Info lines (`quiet: false`) are
 * kept for counting, not echoed. `cli`: another built tree's daemon (bench/ab.mjs).
 */
export async function startDaemon({ warmPool = 0, quiet = true, metricsPort = null, config: extra = {}, cli = CLI } = {}) {
  const stateDir = mkdtempSync(join(tmpdir(), "sbx-bench-"));
  const config = `${stateDir}.config.json`;
  // Hundreds of idle sandboxes with the default 10 GiB disk cap each promise more than /tmp holds; their images stay sparse.
  writeFileSync(config, JSON.stringify({ diskOvercommit: 100_000, maxSandboxesPerToken: 10_000, ...(warmPool === null ? {} : { warmPool }), ...(metricsPort === null ? {} : { metricsListen: `127.0.0.1:${metricsPort}` }), ...extra }));
  // BENCH_DAEMON_NODE_ARGS: node flags for the daemon (profiling: "--cpu-prof --cpu-prof-dir=/tmp/prof")
  const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const args = [...nodeArgs, cli, "daemon", "--listen", "127.0.0.1:0", "--state-dir", stateDir, "--config", config, ...(quiet ? ["--quiet"] : [])];
  const proc = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let partial = "";
  proc.stderr.on("data", (d) => {
    stderr += d;
    const lines = (partial + d).split("\n");
    partial = lines.pop();
    // warnings and errors only (what --quiet leaves), but not the disk overcommit notice asked for above
    for (const l of lines) if (!/^\S+ (info |warn disk: sandboxes' caps are not reserved)/.test(l)) process.stderr.write(`[daemon] ${l}\n`);
  });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (ws:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    proc.once("exit", (code) => reject(new Error(`daemon exited with ${code}: ${stderr}`)));
  });
  const info = JSON.parse(readFileSync(join(stateDir, "daemon.json"), "utf8"));
  if (!info.uids) throw new Error(`the daemon is not in root mode (no uids in ${stateDir}/daemon.json)`);
  const [lo, hi] = info.uids;
  const unwatch = watchUids(lo, hi, proc.pid);
  const token = readFileSync(join(stateDir, "token"), "utf8").trim();
  return {
    url, token, proc, stateDir, opts: { url, token }, logs: () => stderr,
    /** Its Prometheus endpoint, when started with a metricsPort. */
    metricsUrl: metricsPort === null ? null : `http://127.0.0.1:${metricsPort}/metrics`,
    /** The host uids it claimed, first and last. */
    uids: [lo, hi],
    /** This daemon's cgroup directory name (the daemon derives it from its state dir). */
    cgroupName: `sbx-${createHash("sha256").update(stateDir).digest("hex").slice(0, 12)}`,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
      // its sandboxes die with it (bwrap --die-with-parent): wait for that before forgetting its uids
      const deadline = Date.now() + 10_000;
      while (sandboxProcs().some((p) => p.uid >= lo && p.uid <= hi) && Date.now() < deadline) await sleep(10);
      unwatch();
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(config, { force: true });
      // the daemon leaves its (empty) per-state-dir cgroup parents behind: remove this one's
      for (const c of CG_CONTROLLERS) try { rmdirSync(join("/sys/fs/cgroup", c, this.cgroupName)); } catch {}
    },
  };
}

/**
 * Host uids for the raw-bwrap floors: the top of the main daemon's own range. No other daemon
 * may claim them, and the daemon hands its uids out from the bottom (it would need tens of
 * thousands of live sandboxes to reach these).
 */
export function floorUids(d, count = 64) {
  const [lo, hi] = d.uids;
  if (hi - lo + 1 < 4 * count) throw new Error(`the daemon's uid range ${lo}..${hi} is too small to lend the floors ${count} uids`);
  return Array.from({ length: count }, (_, i) => hi - count + 1 + i);
}

/** A loopback port free right now (for a listener configured by number, such as metricsListen). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
