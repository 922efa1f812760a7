import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isIPv4 } from "node:net";
import { join } from "node:path";
import { DEFAULT_URL, TOKEN_FILE, defaultStateDir } from "@sbx/protocol";
import { ConnectionError, InvalidTokenError, MissingTokenError } from "./errors.js";
import type { ConnectOptions } from "./types.js";

/** A token and where it came from, so a refusal can say which one the daemon did not take. */
export interface ResolvedToken {
  value: string;
  source: "option" | "SBX_TOKEN" | "file";
  /** The token file read, when `source` is "file". */
  file?: string;
}

/** Who listens on a local TCP port, as far as /proc tells this user. */
export interface PortOwner {
  uid: number;
  /** The uid's name in /etc/passwd, if it has one. */
  user: string | null;
  /** Only found when this user may read the owner's /proc/PID/fd (its own processes, or root). */
  pid: number | null;
}

/**
 * Where to connect and with which token: options first, then SBX_URL / SBX_TOKEN, then the
 * default URL and the daemon's token file. `embedded` says a local daemon may be started.
 */
export async function resolveEndpoint(opts: ConnectOptions) {
  const env = typeof process !== "undefined" ? process.env : {};
  const url = opts.url ?? env.SBX_URL ?? DEFAULT_URL;
  checkUrl(url, opts.url !== undefined ? "the url option" : env.SBX_URL !== undefined ? "SBX_URL" : "the default URL");
  const embedded = !opts.url && !env.SBX_URL;
  const token = async (): Promise<ResolvedToken> => {
    if (opts.token) return { value: opts.token, source: "option" };
    if (env.SBX_TOKEN) return { value: env.SBX_TOKEN, source: "SBX_TOKEN" };
    const file = join(defaultStateDir(env), TOKEN_FILE);
    try {
      return { value: (await readFile(file, "utf8")).trim(), source: "file", file };
    } catch (err) {
      throw new MissingTokenError(`no token: pass { token }, set SBX_TOKEN, or make the daemon's token file ${file} readable (${(err as Error).message})`, { cause: err, tokenSource: "file", tokenFile: file });
    }
  };
  return { url, token, embedded };
}

/** `new URL` would throw a bare "Invalid URL" (or take "localhost:7070" for a scheme): say what is wanted. */
function checkUrl(url: string, from: string): void {
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {}
  if (parsed && (parsed.protocol === "ws:" || parsed.protocol === "wss:") && parsed.hostname) return;
  const guess = /^[A-Za-z0-9.-]+:[0-9]+$|^\[[0-9A-Fa-f:.]+\]:[0-9]+$/.test(url) ? ` (did you mean ws://${url}?)` : "";
  throw new ConnectionError(`${from} must be a ws:// or wss:// URL, got '${url}'${guess}`);
}

/** Whether a URL names this machine (a daemon there may be another local user's): localhost, 127.0.0.0/8 or ::1, not a name that starts with "127.". */
export function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || (isIPv4(host) && host.startsWith("127."));
}

/**
 * How the client masks what it sends (RFC 6455 §5.3). Masking keeps a script in a browser from
 * steering what a plain-text proxy on the way reads as HTTP; no proxy sits on a loopback
 * connection and none reads inside TLS, so there every frame gets the key 0, which `ws` takes
 * as leave-the-bytes-alone: no pass over the payload and no copy of it (an upload cost this
 * process 0.5 CPU-seconds per GiB instead of 1.4). A plain ws:// URL elsewhere keeps `ws`'s
 * fresh random key per frame (undefined here).
 */
export function maskingFor(url: string): ((mask: Buffer) => void) | undefined {
  const secure = new URL(url).protocol === "wss:";
  return secure || isLoopbackUrl(url) ? (mask) => void mask.fill(0) : undefined;
}

/**
 * The owner of the socket listening on local TCP `port`, from /proc/net/tcp{,6} (the uid
 * column) and, where readable, /proc/PID/fd (the pid). Null when nothing is found or /proc is
 * not there (not Linux, or a runtime without it).
 */
export function portOwner(port: number): PortOwner | null {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let lines: string[];
    try {
      lines = readFileSync(table, "utf8").split("\n").slice(1);
    } catch {
      continue;
    }
    for (const line of lines) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A" || !f[1]!.endsWith(`:${hexPort}`)) continue;
      const uid = Number(f[7]);
      return { uid, user: userName(uid), pid: pidOfSocket(f[9]!) };
    }
  }
  return null;
}

function userName(uid: number): string | null {
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const [name, , id] = line.split(":");
      if (name && Number(id) === uid && id !== "") return name;
    }
  } catch {}
  return null;
}

function pidOfSocket(inode: string): number | null {
  const target = `socket:[${inode}]`;
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // another user's process, or gone
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return Number(pid);
      } catch {}
    }
  }
  return null;
}

/**
 * Why the daemon at `url` refused `token`, and what to do about it. When the token came from
 * this user's token file and a daemon of another user holds the loopback port, that is the
 * likely story: two users on one host, the first one's daemon on the default port.
 */
export function authFailure(url: string, token: ResolvedToken): InvalidTokenError {
  const from = token.source === "option" ? "the token passed in { token }" : token.source === "SBX_TOKEN" ? "the token in SBX_TOKEN" : `the token from ${token.file}`;
  const owner = token.source === "file" && isLoopbackUrl(url) ? otherUsersListener(url) : null;
  const base = `the daemon at ${url} refused ${from} (HTTP 401)`;
  const details = { tokenSource: token.source, ...(token.file ? { tokenFile: token.file } : {}), ...(owner ? { portOwner: owner } : {}) };
  if (owner) return new InvalidTokenError(`${base}: ${portOwnerHint(url, owner)}`, details);
  return new InvalidTokenError(`${base}: pass { token } or set SBX_TOKEN to the token of the daemon at ${url} (its state dir's token file)`, details);
}

function otherUsersListener(url: string): PortOwner | null {
  const port = Number(new URL(url).port) || 80;
  const owner = portOwner(port);
  return owner && owner.uid !== process.getuid?.() ? owner : null;
}

/**
 * The sentence that says whose daemon holds the port and how to run one's own; the CLI and
 * the SDK both end their message with it.
 */
export function portOwnerHint(url: string, owner: PortOwner): string {
  const { hostname, port } = new URL(url);
  const who = [owner.user ?? `uid ${owner.uid}`, owner.user ? `uid ${owner.uid}` : null, owner.pid ? `pid ${owner.pid}` : null].filter(Boolean).join(", ");
  const mine = (Number(port) || 80) + 1;
  return (
    `${hostname}:${port || 80} belongs to another user's sbx daemon (${who}), which has its own token. ` +
    `Run your own on another port: \`sbx daemon start --listen 127.0.0.1:${mine}\`, then set SBX_URL=ws://127.0.0.1:${mine}`
  );
}
