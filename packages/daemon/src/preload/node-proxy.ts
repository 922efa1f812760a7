/**
 * Preloaded into every Node process inside a sandbox (NODE_OPTIONS=--require): Node's global
 * fetch and its http/https modules ignore HTTP_PROXY and friends, so without this they would
 * have no network at all. This file stays tiny so that Node starts as fast as without it; the
 * proxy code (node-proxy-impl.cjs beside it) loads on a program's first request.
 */
import http from "node:http";
import https from "node:https";

const proxyUrl = process.env.HTTPS_PROXY || process.env.https_proxy || process.env.HTTP_PROXY || process.env.http_proxy;

type Impl = typeof import("./node-proxy-impl.js");
let impl: Impl | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = (): Impl => (impl ??= require(`${__dirname}/node-proxy-impl.cjs`) as Impl);

if (proxyUrl) {
  const realFetch = globalThis.fetch;
  let ready = false;
  globalThis.fetch = function fetch(input: Parameters<typeof realFetch>[0], init?: Parameters<typeof realFetch>[1]) {
    if (!ready) {
      load().useProxyForFetch();
      ready = true;
    }
    return realFetch(input, init);
  } as typeof realFetch;

  let httpsAgent: https.Agent | undefined;
  // https.request reads https.globalAgent at call time, so a getter keeps it lazy.
  Object.defineProperty(https, "globalAgent", { configurable: true, get: () => (httpsAgent ??= load().httpsProxyAgent(proxyUrl)), set: () => {} });

  // http.request reads an internal copy only the exported setter updates: set an agent now that
  // creates the real one on its first request.
  let httpAgent: http.Agent | undefined;
  http.globalAgent = new (class extends http.Agent {
    addRequest(req: http.ClientRequest, options: object): void {
      httpAgent ??= load().httpProxyAgent(proxyUrl!);
      (httpAgent as unknown as { addRequest(r: http.ClientRequest, o: object): void }).addRequest(req, options);
    }
  })({ keepAlive: true });
}
