/**
 * The sbx fleet gateway: clients connect to it exactly as to one daemon (same URL scheme,
 * same bearer tokens, same protocol) and reach sandboxes on many. It places each new sandbox
 * on a daemon with room and routes every later call by the host named in the sandbox id.
 *
 * @example
 * import { Gateway, resolveConfig } from "@sbx/gateway";
 * const gw = await Gateway.start(resolveConfig({ tokensFile: "/etc/sbx/tokens", daemons: ["ws://10.0.0.5:7070", "ws://10.0.0.6:7070"] }));
 * @module
 */
export { Gateway, discoveryOf } from "./gateway.js";
export { resolveConfig, readConfigFile, type GatewayConfig, type GatewaySettings, type DiscoveryConfig } from "./config.js";
export type { Discovery, DaemonEndpoint } from "./discovery/discovery.js";
export { StaticDiscovery } from "./discovery/static.js";
export { KubernetesDiscovery, type KubernetesDiscoveryOptions } from "./discovery/kubernetes.js";
export { endpointsOf } from "./discovery/endpoint-slices.js";
export { assess, requestOf, type Request, type DaemonInfo } from "./fleet/placement.js";
export { hostPrefixOf } from "./fleet/ids.js";
export { createLogger, type Logger } from "./log.js";
