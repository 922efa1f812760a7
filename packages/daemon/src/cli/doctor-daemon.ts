import { createConnection } from "node:net";
import { DEFAULT_URL } from "@sbx/protocol";
import { Sandbox, type ConnectOptions } from "@sbx/client";
import { checkHost, formatChecks, type Check } from "../doctor.js";
import { parse, UsageError } from "./args.js";

/** One step of the end-to-end check: its name, and what it proves when it passes. */
type Step = { name: string; run: (sb: Sandbox) => Promise<string> };

const STEPS: Step[] = [
  {
    name: "process",
    run: async (sb) => {
      const t = performance.now();
      const out = (await sb.sh`id -u; pwd`.text()).trim().split("\n");
      if (out[0] !== "1000") throw new Error(`runs as uid ${out[0]} inside, not 1000`);
      return `ran id and pwd as uid 1000 in ${out[1]} (${(performance.now() - t).toFixed(1)} ms)`;
    },
  },
  {
    name: "files",
    run: async (sb) => {
      const data = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
      const t = performance.now();
      await sb.fs.writeFile("doctor.bin", data);
      const back = await sb.fs.readFile("doctor.bin");
      if (back.length !== data.length || back.some((b, i) => b !== data[i])) throw new Error("a 1 MiB file came back different");
      return `1 MiB written and read back intact (${(performance.now() - t).toFixed(1)} ms)`;
    },
  },
  {
    name: "no network without allowNet",
    run: async (sb) => {
      // The only way out is the egress proxy; with an empty allow-list it refuses everything.
      const code = (await sb.sh`curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://example.com/ || true`.noThrow().text()).trim();
      if (code !== "403") throw new Error(`a request to example.com got ${code || "no answer"}, not the proxy's 403 refusal`);
      return "example.com refused by the egress proxy (403)";
    },
  },
  {
    name: "seccomp and namespaces",
    run: async (sb) => {
      // A new user namespace is what most container escapes start from; the filter refuses it.
      const r = await sb.sh`unshare -U true 2>&1; echo "exit $?"`.noThrow().text();
      if (/exit 0\s*$/.test(r)) throw new Error("unshare -U succeeded inside the sandbox");
      return "unshare -U refused";
    },
  },
];

/**
 * Checks a running daemon end to end, as a client would use it: connect with the token, create
 * a sandbox, run a process, move a file, see the network shut and a namespace escape refused,
 * then kill it and read its usage. Each step is a check; a step that fails says what it saw.
 */
export async function checkDaemon(options: ConnectOptions): Promise<Check[]> {
  const checks: Check[] = [];
  const t = performance.now();
  let sb: Sandbox;
  try {
    sb = await Sandbox.create({ ...options, timeout: "2m", labels: { purpose: "sbx-doctor" } });
  } catch (err) {
    return [{ name: "daemon: create a sandbox", ok: false, detail: (err as Error).message, fix: "is the daemon running (sbx daemon status), and are SBX_URL / SBX_TOKEN (or --url / --token) its own?" }];
  }
  checks.push({ name: "daemon: create a sandbox", ok: true, detail: `${sb.id} in ${(performance.now() - t).toFixed(1)} ms${sb.warnings.length ? `; warnings: ${sb.warnings.join("; ")}` : ""}` });
  try {
    for (const step of STEPS) {
      try {
        checks.push({ name: `daemon: ${step.name}`, ok: true, detail: await step.run(sb) });
      } catch (err) {
        checks.push({ name: `daemon: ${step.name}`, ok: false, detail: (err as Error).message });
      }
    }
  } finally {
    try {
      await sb.kill();
      const usage = await Sandbox.usageOf(sb.id, options);
      checks.push({ name: "daemon: kill and usage", ok: usage.status === "stopped", detail: `stopped; it used ${usage.cpuSeconds.toFixed(3)} CPU-seconds` });
    } catch (err) {
      checks.push({ name: "daemon: kill and usage", ok: false, detail: (err as Error).message });
    }
  }
  return checks;
}

function answers(url: string): Promise<boolean> {
  const { hostname, port, protocol } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname.replace(/^\[|\]$/g, ""), port: Number(port) || (protocol === "wss:" ? 443 : 80) }, () => (socket.destroy(), resolve(true)));
    socket.on("error", () => resolve(false));
  });
}

/**
 * `sbx doctor`: the host's checks, then the daemon's end to end. A daemon is checked when one is
 * named (--url or SBX_URL: it must answer) or answers at the default URL; otherwise that part is
 * skipped, saying so.
 */
export async function doctorCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { url: { type: "string" }, token: { type: "string" }, "host-only": { type: "boolean" } }, false);
  const rootMode = process.getuid?.() === 0;
  const checks = checkHost({ trialUid: rootMode ? 200000 : null, rootMode });
  process.stdout.write(formatChecks(checks) + "\n");
  if (!values["host-only"]) {
    const named = values.url ?? process.env.SBX_URL;
    if (named !== undefined && !/^wss?:\/\/[^/]/.test(named)) throw new UsageError(`--url must be a ws:// or wss:// URL, got '${named}'`);
    const url = named ?? DEFAULT_URL;
    if (named !== undefined || (await answers(url))) {
      const daemon = await checkDaemon({ url, ...(values.token ? { token: values.token } : {}) });
      process.stdout.write(`${formatChecks(daemon)}\n`);
      checks.push(...daemon);
    } else process.stdout.write(`skip daemon: none answers at ${url} (start one with \`sbx daemon start\`, or give --url)\n`);
  }
  return checks.every((c) => c.ok) ? 0 : 1;
}
