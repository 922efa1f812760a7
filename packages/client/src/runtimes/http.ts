/**
 * What processes serving HTTP share (DenoProcess, the REPLs): `httpReady`, true once the process
 * or a descendant listens on a TCP port (whatever started the server: Deno.serve, node:http, a
 * Python thread), false if it exits first; and `fetch` to that port.
 */
import { ErrorCodes } from "@sbx/protocol";
import type { Connection } from "../connection.js";
import { RpcError, SandboxError } from "../errors.js";
import type { ExitStatus } from "../types.js";
import { fetchInside } from "./fetch.js";

/** The TCP ports `pid` and its descendants listen on, ascending; [] once it has exited. */
export async function listeningPorts(conn: Connection, sandbox: string, pid: number): Promise<number[]> {
  try {
    return (await conn.request("process.ports", { sandbox, pid })).ports;
  } catch (err) {
    if (err instanceof RpcError && err.rpcCode === ErrorCodes.ProcessNotFound) return [];
    throw err;
  }
}

/** Polls until `pid` listens (true) or exits (false): every 20 ms at first, backing off to 250 ms. */
export async function waitForHttp(conn: Connection, sandbox: string, pid: number, status: Promise<ExitStatus>): Promise<boolean> {
  let exited = false;
  status.then(() => (exited = true), () => (exited = true));
  for (let delay = 20; ; delay = Math.min(250, delay * 1.5)) {
    if ((await listeningPorts(conn, sandbox, pid)).length > 0) return true;
    if (exited) return false;
    await Promise.race([new Promise((r) => setTimeout(r, delay)), status.catch(() => {})]);
  }
}

/** `fetch` to the first port the process listens on; the URL's host is not used for routing. */
export async function fetchProcess(conn: Connection, sandbox: string, pid: number, input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const [port] = await listeningPorts(conn, sandbox, pid);
  if (port === undefined) throw new SandboxError(`process ${pid} listens on no TCP port (yet): await httpReady first`);
  return fetchInside(conn, sandbox, input, init, port);
}
