import { applyConfigFile, defaultConfig } from "../config.js";
import { Daemon, HostNotReadyError } from "../daemon.js";
import { createLogger } from "../util/log.js";
import { parseDuration } from "../util/units.js";
import { ResolveMap } from "../egress/resolve-map.js";
import { parse, UsageError } from "./args.js";

export const DAEMON_HELP = `sbx daemon [--listen 127.0.0.1:7070] [--state-dir DIR] [--config FILE] [--session-grace 5s] [--warm-pool 2] [--resolve NAME[:PORT]=ADDR[:PORT]]... [--extra-ca FILE]... [--quiet]
  Runs the daemon in the foreground. Port 0 picks a free port; the line
  "sbx daemon listening on ws://HOST:PORT" on stdout says which.`;

export async function daemonCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    listen: { type: "string" },
    "state-dir": { type: "string" },
    config: { type: "string" },
    "session-grace": { type: "string" },
    "warm-pool": { type: "string" },
    resolve: { type: "string", multiple: true },
    "extra-ca": { type: "string", multiple: true },
    quiet: { type: "boolean" },
  }, false);
  const config = defaultConfig();
  if (values.config) applyConfigFile(config, values.config);
  if (values.listen) config.listen = values.listen;
  if (values["state-dir"]) config.stateDir = values["state-dir"];
  if (values["session-grace"]) config.sessionGraceMs = parseDuration(values["session-grace"]);
  // Like curl, each --resolve adds a pin (and wins over the config file's for the same name).
  if (values.resolve?.length) config.egressPins = config.egressPins.merge(ResolveMap.fromFlags(values.resolve));
  // Extra CAs add up: the config file's and every --extra-ca.
  if (values["extra-ca"]?.length) config.extraCaCerts = [...config.extraCaCerts, ...values["extra-ca"]];
  if (values["warm-pool"] !== undefined) {
    const n = Number(values["warm-pool"]);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--warm-pool expects a whole number, got '${values["warm-pool"]}'`);
    config.warmPool = n;
  }
  const log = createLogger(undefined, values.quiet ?? false);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, { log });
  } catch (err) {
    process.stderr.write(`sbx daemon: ${(err as Error).message}\n`);
    return err instanceof HostNotReadyError ? 3 : 1;
  }
  process.stdout.write(`sbx daemon listening on ${daemon.url}\n`);
  if (daemon.tokenPath) process.stdout.write(`token file: ${daemon.tokenPath}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await daemon.close();
  return 0;
}
