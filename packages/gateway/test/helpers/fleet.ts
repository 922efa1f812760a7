import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startDaemon, type TestDaemon } from "../../../daemon/test/helpers/daemon.js";

export const GATEWAY_CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

export interface TestGateway {
  url: string;
  proc: ChildProcess;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves once the gateway's log shows `pattern` (its view of the fleet changed). */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

export interface TestFleet extends AsyncDisposable {
  daemons: TestDaemon[];
  gateways: TestGateway[];
  /** The daemons' shared operator token. */
  operator: string;
  /** Tenant tokens every daemon and gateway accepts. */
  tenants: string[];
  dir: string;
}

export const token = (name: string) => `${name}-${randomBytes(18).toString("base64url")}`;

/** Starts `sbx-gateway` (this checkout's, or the build at `cli`) with `args`; resolves once it listens. */
export async function startGateway(args: string[], env: NodeJS.ProcessEnv = {}, cli = GATEWAY_CLI): Promise<TestGateway> {
  const proc = spawn(process.execPath, [cli, "--listen", "127.0.0.1:0", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let stderr = "";
  const watchers = new Set<() => void>();
  proc.stderr!.on("data", (d) => {
    stderr += d;
    for (const w of watchers) w();
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (ws:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.once("exit", (code) => reject(new Error(`gateway exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    proc,
    logs: () => stderr,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill(signal);
      await exited;
    },
    waitForLog(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pattern.test(stderr)) return;
          watchers.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`gateway log never matched ${pattern}:\n${stderr}`));
        }, timeoutMs);
        watchers.add(check);
        check();
      });
    },
  };
}

/**
 * `daemons` real daemons (root mode: each claims its own uid range), sharing one operator token
 * and the tenant tokens, with id prefixes h0, h1, ...; and `gateways` gateway processes in front
 * of all of them, each started once it sees every daemon up.
 */
export async function startFleet(opts: { daemons: number; gateways: number; tenants?: number; daemonConfig?: Record<string, unknown> }): Promise<TestFleet> {
  const dir = mkdtempSync(join(tmpdir(), "sbx-fleet-"));
  const operator = token("operator");
  const tenants = Array.from({ length: opts.tenants ?? 2 }, (_, i) => token(`tenant${i}`));
  writeFileSync(join(dir, "tokens"), tenants.join("\n") + "\n");
  writeFileSync(join(dir, "operator"), operator + "\n");
  const daemons = await Promise.all(
    Array.from({ length: opts.daemons }, (_, i) =>
      startDaemon({ env: { SBX_TOKEN: operator }, config: { idPrefix: `h${i}`, tokensFile: join(dir, "tokens"), warmPool: 0, ...opts.daemonConfig } }),
    ),
  );
  const args = ["--tokens-file", join(dir, "tokens"), "--daemon-token-file", join(dir, "operator"), ...daemons.flatMap((d) => ["--daemon", d.url])];
  const gateways = await Promise.all(Array.from({ length: opts.gateways }, () => startGateway(args)));
  await Promise.all(gateways.flatMap((g) => daemons.map((_, i) => g.waitForLog(new RegExp(`up: sandbox ids sbx_h${i}_`)))));
  return {
    daemons,
    gateways,
    operator,
    tenants,
    dir,
    async [Symbol.asyncDispose]() {
      await Promise.all(gateways.map((g) => g.stop()));
      await Promise.all(daemons.map((d) => d[Symbol.asyncDispose]()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
