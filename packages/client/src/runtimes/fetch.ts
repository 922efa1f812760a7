/**
 * `sandbox.fetch` and `DenoProcess.fetch`: a plain HTTP/1.1 request to a server inside the sandbox,
 * over a TCP connection the supervisor opens on the sandbox's loopback (net.connect) and the
 * daemon relays; nothing is exposed. Node's own HTTP client does the framing over that stream.
 */
import { request } from "node:http";
import { Duplex, Readable } from "node:stream";
import { ErrorCodes } from "@sbx/protocol";
import type { Connection } from "../connection.js";
import { InvalidOptionError } from "../errors.js";

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** Sends `input` to `port` inside the sandbox (for `sandbox.fetch`, the URL's port on a loopback host). */
export async function fetchInside(conn: Connection, sandbox: string, input: string | URL | Request, init: RequestInit | undefined, port: number | null): Promise<Response> {
  const req = new Request(input, init);
  const url = new URL(req.url);
  // A process's own server (port given) is reached whatever the URL says, as in @deno/sandbox.
  if (port === null && url.protocol !== "http:") throw new InvalidOptionError(`url: ${url.protocol} is not served; servers inside the sandbox are reached over plain http://`, ErrorCodes.InvalidParams);
  if (port === null) {
    if (!LOOPBACK.has(url.hostname)) throw new InvalidOptionError(`url: ${url.hostname} is not the sandbox's own loopback; sandbox.fetch reaches servers inside it (http://localhost:PORT/...)`, ErrorCodes.InvalidParams);
    port = url.port ? Number(url.port) : 80;
  }
  const toServer = conn.streams.outgoing();
  const fromServer = conn.streams.incoming();
  try {
    await conn.request("net.connect", { sandbox, port, input: toServer.id, output: fromServer.id });
  } catch (err) {
    toServer.fail(err as Error);
    fromServer.fail(err as Error);
    throw err;
  }
  const socket = Duplex.fromWeb({ readable: fromServer.readable, writable: toServer.writable } as never);
  const headers: Record<string, string> = { host: url.host, connection: "close" };
  req.headers.forEach((v, k) => (headers[k] = v));
  return new Promise<Response>((resolve, reject) => {
    const r = request({ method: req.method, path: url.pathname + url.search, headers, createConnection: () => socket as never });
    r.on("response", (res) => {
      const h = new Headers();
      for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
      const status = res.statusCode ?? 502;
      const empty = status === 204 || status === 205 || status === 304 || req.method === "HEAD";
      if (empty) res.resume();
      resolve(new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage ?? "", headers: h }));
    });
    r.on("error", reject);
    init?.signal?.addEventListener("abort", () => r.destroy(new Error("aborted")), { once: true });
    if (req.body) Readable.fromWeb(req.body as never).pipe(r);
    else r.end();
  });
}
