/**
 * The heavy half of the sandbox's Node preload, loaded on a program's first request only:
 * undici's proxy dispatcher for fetch and proxy agents for http(s), all honouring NO_PROXY.
 */
import http from "node:http";
import https from "node:https";
import { HttpProxyAgent } from "http-proxy-agent";
import { HttpsProxyAgent } from "https-proxy-agent";
import { EnvHttpProxyAgent, setGlobalDispatcher } from "undici";

type HttpsConnect = Parameters<HttpsProxyAgent<string>["connect"]>;
type HttpConnect = Parameters<HttpProxyAgent<string>["connect"]>;

function isDirect(host: string | null | undefined): boolean {
  const h = (host ?? "").replace(/^\[|\]$/g, "").toLowerCase();
  const noProxy = (process.env.NO_PROXY || process.env.no_proxy || "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  return h === "localhost" || h === "127.0.0.1" || h === "::1" || noProxy.some((n) => n === "*" || h === n || h.endsWith(n.startsWith(".") ? n : `.${n}`));
}

export function useProxyForFetch(): void {
  // undici warns that EnvHttpProxyAgent is experimental on every construction; that line would land in every sandboxed program's stderr.
  const emitWarning = process.emitWarning;
  process.emitWarning = (() => {}) as typeof process.emitWarning;
  try {
    setGlobalDispatcher(new EnvHttpProxyAgent());
  } finally {
    process.emitWarning = emitWarning;
  }
}

export function httpsProxyAgent(proxyUrl: string): https.Agent {
  const direct = new https.Agent({ keepAlive: true });
  return new (class extends HttpsProxyAgent<string> {
    override connect(req: HttpsConnect[0], opts: HttpsConnect[1]) {
      return isDirect(opts.host) ? (direct as never) : super.connect(req, opts);
    }
  })(proxyUrl, { keepAlive: true });
}

export function httpProxyAgent(proxyUrl: string): http.Agent {
  const direct = new http.Agent({ keepAlive: true });
  return new (class extends HttpProxyAgent<string> {
    override connect(req: HttpConnect[0], opts: HttpConnect[1]) {
      return isDirect(opts.host) ? (direct as never) : super.connect(req, opts);
    }
  })(proxyUrl, { keepAlive: true });
}
