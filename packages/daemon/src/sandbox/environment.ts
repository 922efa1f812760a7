/**
 * The environment a sandbox's processes start from: the daemon's base (the user, the proxy
 * variables, the Node preload, the trust bundle), then the sandbox's own (env.set, create's env,
 * its secrets' placeholders), then the spawn's.
 */
import { SANDBOX_HOME } from "@sbx/protocol";
import { JAVA_TRUST_STORE, TRUST_ENV } from "../egress/tls/trust.js";
import { JKS_PASSWORD } from "../egress/tls/jks.js";
import type { Sandbox } from "./sandbox.js";

/** The Node option that loads the egress preload. */
const PROXY_PRELOAD = "--require /.sbx/node-proxy.cjs";

/**
 * Java reads no proxy variables: its system properties name the proxy (for HttpURLConnection,
 * java.net.http, Maven and Gradle), and its trust store is a JKS copy of the sandbox's bundle
 * (the daemon's CA included, for secret hosts).
 */
const JAVA_OPTIONS = [
  "-Dhttp.proxyHost=127.0.0.1", "-Dhttp.proxyPort=3128", "-Dhttps.proxyHost=127.0.0.1", "-Dhttps.proxyPort=3128",
  "-Dhttp.nonProxyHosts=localhost|127.0.0.1|[::1]",
  `-Djavax.net.ssl.trustStore=${JAVA_TRUST_STORE}`, "-Djavax.net.ssl.trustStoreType=JKS", `-Djavax.net.ssl.trustStorePassword=${JKS_PASSWORD}`,
].join(" ");

/** Variables holding a runtime's options, and what of ours each must keep in front of a caller's own. */
const OURS: Readonly<Record<string, string>> = { NODE_OPTIONS: PROXY_PRELOAD, JAVA_TOOL_OPTIONS: JAVA_OPTIONS };

/**
 * NODE_OPTIONS and JAVA_TOOL_OPTIONS as the caller set them (env.set, spawn's env, sh.env) with
 * ours in front: without them Node's fetch and Java get no network at all (a caller's own
 * options come after ours, so a later -D of theirs still wins). A caller who clears the
 * environment gets exactly what it gives.
 */
export function withEgressOptions(env: Record<string, string>): Record<string, string> {
  let out = env;
  for (const [name, ours] of Object.entries(OURS)) {
    const own = env[name];
    if (own === undefined || own.split(/\s+/).join(" ").includes(ours)) continue;
    out = { ...out, [name]: own.trim() ? `${ours} ${own}` : ours };
  }
  return out;
}

/** The environment every spawn starts from, below the sandbox's and the call's own. */
export const BASE_ENV: Readonly<Record<string, string>> = {
  HOME: SANDBOX_HOME,
  USER: "user",
  LOGNAME: "user",
  SHELL: "/bin/bash",
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C.UTF-8",
  // The way out: the supervisor's bridge to the daemon's egress proxy. Programs that ignore these get no network at all.
  ...Object.fromEntries(
    ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"].flatMap((k) => [
      [k, "http://127.0.0.1:3128"],
      [k.toLowerCase(), "http://127.0.0.1:3128"],
    ]),
  ),
  NO_PROXY: "localhost,127.0.0.1,::1",
  no_proxy: "localhost,127.0.0.1,::1",
  // Node's fetch and http(s) and Java ignore the variables above; their options route them through the proxy.
  ...OURS,
  // TLS clients trust the daemon's CA, which signs what the proxy shows for secret hosts (Node's variable: see SECRETS_TRUST_ENV).
  ...TRUST_ENV,
};

/** What every spawn starts from unless it clears the environment: the daemon's base, the sandbox's own, then env.set, less what env.delete removed. */
export function defaultEnv(sb: Sandbox): Record<string, string> {
  const env: Record<string, string> = { ...BASE_ENV, ...sb.baseEnv, ...Object.fromEntries(sb.env) };
  for (const name of sb.envRemoved) delete env[name];
  return env;
}

/** env.set: later spawns start with `name` = `value`. */
export function setEnv(sb: Sandbox, name: string, value: string): void {
  sb.env.set(name, value);
  sb.envRemoved.delete(name);
}

/**
 * Base variables env.delete may remove. The rest of the base is the sandbox's plumbing (the
 * proxy variables, Node's and Java's options, the trust bundle, secret placeholders): deleting
 * one only undoes an env.set, so that no call leaves a runtime without its way out.
 */
const REMOVABLE = new Set(["HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG"]);

/** env.delete: later spawns start without `name`, whether env.set or the base environment put it there (plumbing aside). */
export function deleteEnv(sb: Sandbox, name: string): void {
  sb.env.delete(name);
  if (REMOVABLE.has(name)) sb.envRemoved.add(name);
}
