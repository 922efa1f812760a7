import { parseArgs } from "node:util";
import { readConfigFile, resolveConfig, type GatewaySettings } from "./config.js";
import { Gateway } from "./gateway.js";
import { createLogger } from "./log.js";
import { GATEWAY_VERSION } from "./version.js";

const HELP = `sbx-gateway: one endpoint for a fleet of sbx daemons

sbx-gateway --tokens-file FILE (--daemon ws://HOST:PORT ... | --kubernetes-service NAME) [options]
  --listen HOST:PORT             where clients connect (default 0.0.0.0:7070; port 0 picks one)
  --tokens-file FILE             client tokens, one per line (every daemon must accept them too);
                                 repeatable: a tenant's own token file is one more
  --daemon-token-file FILE       the daemons' operator token (default: $SBX_DAEMON_TOKEN)
  --daemon URL                   a daemon, for a fixed list (repeatable)
  --kubernetes-service NAME      the daemons' headless Service: its EndpointSlices are watched
  --kubernetes-namespace NS      (default: the pod's own namespace)
  --kubernetes-port-name NAME    the Service port of the daemons' API (default: its first port)
  --config FILE                  the same as JSON (listen, tokensFile, daemonTokenFile, daemons,
                                 kubernetes {service, namespace, portName, apiUrl, tokenFile, caFile},
                                 maxConnections, placementCandidates, heartbeat); flags win
  --quiet                        only warnings and errors on stderr
sbx-gateway --version

Prints "sbx gateway listening on ws://HOST:PORT" once it listens; SIGTERM closes it.`;

const OPTIONS = {
  listen: { type: "string" },
  config: { type: "string" },
  "tokens-file": { type: "string", multiple: true },
  "daemon-token-file": { type: "string" },
  daemon: { type: "string", multiple: true },
  "kubernetes-service": { type: "string" },
  "kubernetes-namespace": { type: "string" },
  "kubernetes-port-name": { type: "string" },
  quiet: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

async function main(argv: string[]): Promise<number> {
  let values: Record<string, any>;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true }));
  } catch (err) {
    process.stderr.write(`sbx-gateway: ${(err as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (values.help) return process.stdout.write(HELP + "\n"), 0;
  if (values.version) return process.stdout.write(`sbx-gateway ${GATEWAY_VERSION}\n`), 0;
  let gateway: Gateway;
  try {
    const settings: GatewaySettings = values.config ? readConfigFile(values.config) : {};
    if (values.listen) settings.listen = values.listen;
    if (values["tokens-file"]?.length) settings.tokensFile = values["tokens-file"];
    if (values["daemon-token-file"]) settings.daemonTokenFile = values["daemon-token-file"];
    if (values.daemon?.length) settings.daemons = values.daemon;
    if (values["kubernetes-service"]) {
      settings.kubernetes = { ...settings.kubernetes, service: values["kubernetes-service"] };
      if (values["kubernetes-namespace"]) settings.kubernetes.namespace = values["kubernetes-namespace"];
      if (values["kubernetes-port-name"]) settings.kubernetes.portName = values["kubernetes-port-name"];
    }
    gateway = await Gateway.start(resolveConfig(settings), { log: createLogger(undefined, values.quiet ?? false) });
  } catch (err) {
    process.stderr.write(`sbx-gateway: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`sbx gateway listening on ${gateway.url}\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await gateway.close();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`sbx-gateway: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
