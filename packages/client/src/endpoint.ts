import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { DEFAULT_URL, TOKEN_FILE, defaultStateDir } from "@sbx/protocol";
import { AuthError } from "./errors.js";
import type { ConnectOptions } from "./types.js";

/**
 * Where to connect and with which token: options first, then SBX_URL / SBX_TOKEN, then the
 * default URL and the daemon's token file. `embedded` says a local daemon may be started.
 */
export async function resolveEndpoint(opts: ConnectOptions) {
  const env = typeof process !== "undefined" ? process.env : {};
  const url = opts.url ?? env.SBX_URL ?? DEFAULT_URL;
  const embedded = !opts.url && !env.SBX_URL;
  const token = async (): Promise<string> => {
    if (opts.token) return opts.token;
    if (env.SBX_TOKEN) return env.SBX_TOKEN;
    const path = join(defaultStateDir(env), TOKEN_FILE);
    try {
      return (await readFile(path, "utf8")).trim();
    } catch (err) {
      throw new AuthError(`no token: pass { token }, set SBX_TOKEN, or make the daemon's token file ${path} readable (${(err as Error).message})`);
    }
  };
  return { url, token, embedded };
}
