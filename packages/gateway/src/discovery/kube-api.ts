import { readFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";

/** In-cluster credentials, where the kubelet mounts them into every pod with a service account. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** The most a list answer may hold. */
const MAX_LIST_BYTES = 32 << 20;
/** The most one watch event (one line) may hold. */
const MAX_EVENT_BYTES = 4 << 20;

export interface KubeApiOptions {
  /** https://HOST:PORT of the API server (in a pod: from KUBERNETES_SERVICE_HOST/PORT). */
  apiUrl: string;
  /** The service account token, read again for every request (the kubelet rotates it). */
  tokenFile: string | null;
  /** The cluster CA the API server's certificate is checked against. */
  caFile: string | null;
}

/** The API server's address inside a pod. */
export function inClusterApiUrl(env: NodeJS.ProcessEnv = process.env): string | null {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return null;
  return `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

export class KubeApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/**
 * The two reads discovery needs from the Kubernetes API: a list, and a watch read as it
 * arrives, one JSON event per line, each bounded in size.
 */
export class KubeApi {
  constructor(private readonly opts: KubeApiOptions) {}

  async getJson(path: string, signal: AbortSignal): Promise<any> {
    const res = await this.get(path, signal);
    let body = "";
    for await (const chunk of res) {
      body += chunk;
      if (body.length > MAX_LIST_BYTES) throw new KubeApiError(`the answer to ${path} exceeds ${MAX_LIST_BYTES} bytes`, 0);
    }
    return JSON.parse(body);
  }

  /** Streams a watch: `onEvent` gets each parsed line; resolves when the server ends the stream. */
  async watch(path: string, signal: AbortSignal, onEvent: (event: any) => void): Promise<void> {
    const res = await this.get(path, signal);
    let buffered = "";
    for await (const chunk of res) {
      buffered += chunk;
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) onEvent(JSON.parse(line));
      }
      if (buffered.length > MAX_EVENT_BYTES) throw new KubeApiError(`a watch event on ${path} exceeds ${MAX_EVENT_BYTES} bytes`, 0);
    }
  }

  private get(path: string, signal: AbortSignal): Promise<IncomingMessage> {
    const url = new URL(path, this.opts.apiUrl);
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.opts.tokenFile) headers.Authorization = `Bearer ${readFileSync(this.opts.tokenFile, "utf8").trim()}`;
    const tls = url.protocol === "https:";
    const ca = tls && this.opts.caFile ? readFileSync(this.opts.caFile) : undefined;
    return new Promise((resolve, reject) => {
      const req = (tls ? httpsRequest : httpRequest)(url, { method: "GET", headers, signal, ...(ca ? { ca } : {}) }, (res) => {
        res.setEncoding("utf8");
        if (res.statusCode === 200) return resolve(res);
        let body = "";
        res.on("data", (d: string) => body.length < 4096 && (body += d));
        res.on("end", () => reject(new KubeApiError(`GET ${url.pathname} answered HTTP ${res.statusCode}: ${statusMessage(body)}`, res.statusCode ?? 0)));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
  }
}

/** The message of a Kubernetes Status body, or the body's start. */
function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body);
    if (typeof status?.message === "string") return status.message;
  } catch {}
  return body.slice(0, 300);
}
