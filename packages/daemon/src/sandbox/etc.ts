import { execFile } from "node:child_process";
import { lstatSync, readFileSync, readdirSync, realpathSync, statSync, writeFileSync, mkdirSync, renameSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";

/** Parts of the host's /etc that ordinary programs need; nothing with credentials or host identity. */
export const ETC_SHARED = [
  "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates", "ca-certificates.conf",
  "localtime", "timezone", "nsswitch.conf", "host.conf", "services", "protocols", "mime.types", "os-release",
  "debian_version", "profile", "profile.d", "bash.bashrc", "inputrc", "terminfo", "gitconfig", "magic", "magic.mime",
  "python3", "python3.11", "perl", "shells", "xattr.conf", "locale.alias",
];

/**
 * Never bound, whatever links to them: credentials, host identity and configuration that may
 * hold them, and the files each sandbox gets its own version of (passwd, group, hosts).
 */
const ETC_NEVER = new Set([
  "passwd", "passwd-", "group", "group-", "hosts", "hostname", "machine-id", "shadow", "shadow-", "gshadow", "gshadow-",
  "subuid", "subgid", "sudoers", "sudoers.d", "ssh", "security", "pam.d", "environment", "sbx", "krb5.keytab", "krb5.conf",
  "NetworkManager", "wireguard", "openvpn", "ipsec.secrets", "ppp", "docker", "containerd", "kubernetes", "rancher",
  "letsencrypt", "pki", "credstore", "credstore.encrypted", "polkit-1", "cron.d", "crontab", "netplan", "cloud",
  "systemd", "default", "apt", "exports", "fstab", "mtab", "libvirt", "postfix", "mysql", "postgresql", "redis",
]);

/** Whether the path `rel` below /etc is kept out of every sandbox, whatever links to it or contains it. */
export function neverShared(rel: string): boolean {
  return ETC_NEVER.has(rel.split("/")[0]!) || rel === "ssl/private" || rel.startsWith("ssl/private/");
}

/** How many entries a linked /etc directory may hold for it to be checked whole (and taken as one). */
const MAX_DIR_ENTRIES = 10_000;

/** Where /usr (and /opt) link into /etc: the first component under /etc of each link target. */
async function linksIntoEtc(roots: string[]): Promise<Map<string, string[]>> {
  const byEntry = new Map<string, string[]>();
  for (const root of roots) {
    let out: string;
    try {
      // GNU find prints each link and its target NUL-separated; a walk in Node takes three times as long.
      ({ stdout: out } = await promisify(execFile)("find", [root, "-xdev", "-type", "l", "-printf", "%p\\0%l\\0"], { maxBuffer: 256 << 20, encoding: "utf8" }));
    } catch (err) {
      const partial = (err as { stdout?: string }).stdout;
      if (typeof partial !== "string") continue;
      out = partial; // unreadable corners of the tree are skipped, the rest counts
    }
    const fields = out.split("\0");
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const target = resolve(dirname(fields[i]!), fields[i + 1]!);
      if (!target.startsWith("/etc/")) continue;
      const entry = target.slice("/etc/".length).split("/")[0]!;
      if (!byEntry.has(entry)) byEntry.set(entry, []);
      byEntry.get(entry)!.push(target);
    }
  }
  return byEntry;
}

/** Whether everyone may read `path` (and enter it, for a directory). */
function everyoneReads(path: string): boolean {
  try {
    const st = statSync(path);
    return (st.mode & 0o004) !== 0 && (!st.isDirectory() || (st.mode & 0o001) !== 0);
  } catch {
    return false;
  }
}

/** Every entry below `dir` readable by everyone (bounded; a tree too large to check is not). */
function wholeTreeReadable(dir: string): boolean {
  let seen = 0;
  const walk = (d: string): boolean => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (++seen > MAX_DIR_ENTRIES) return false;
      const p = join(d, e.name);
      if (e.isSymbolicLink()) continue; // its target is checked where it is bound, if at all
      if (!everyoneReads(p)) return false;
      if (e.isDirectory() && !walk(p)) return false;
    }
    return true;
  };
  try {
    return walk(dir);
  } catch {
    return false;
  }
}

/** The host path `path` really is, if it stays out of what ETC_NEVER names. */
function safeTarget(path: string): boolean {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return false; // dangling on the host too: nothing to bind
  }
  for (const p of [path, real]) {
    if (p.startsWith("/etc/") && ETC_NEVER.has(p.slice(5).split("/")[0]!)) return false;
    if (p.startsWith("/etc/ssl/private") || p === "/etc" || p === "/") return false;
  }
  return everyoneReads(real);
}

/**
 * The /etc paths that links from /usr and /opt lead to, beyond {@link ETC_SHARED}: in the /etc
 * every sandbox sees (etc-view.ts copies them with the rest) so that, say, OpenJDK's
 * `conf/security/java.security` and Maven's `m2.conf` resolve. A whole /etc entry is taken when
 * everything in it is world-readable, else only the linked paths that are; nothing ETC_NEVER
 * names, whatever links to it.
 */
export async function linkedEtcPaths(roots: string[] = ["/usr", "/opt"]): Promise<string[]> {
  const shared = new Set(ETC_SHARED);
  const binds: string[] = [];
  for (const [entry, targets] of [...(await linksIntoEtc(roots))].sort(([a], [b]) => a.localeCompare(b))) {
    if (shared.has(entry) || ETC_NEVER.has(entry)) continue;
    const top = `/etc/${entry}`;
    if (safeTarget(top) && (!statSync(top).isDirectory() || wholeTreeReadable(top))) {
      binds.push(top);
      continue;
    }
    for (const t of [...new Set(targets)].sort()) if (safeTarget(t)) binds.push(t);
  }
  return binds;
}

/** What the cached list depends on: the package databases and the trees' own timestamps. */
function fingerprint(roots: string[]): string {
  const stamps = ["/var/lib/dpkg/status", "/var/lib/rpm", "/lib/apk/db/installed", "/etc", ...roots].map((p) => {
    try {
      return `${p}:${lstatSync(p).mtimeMs}`;
    } catch {
      return `${p}:-`;
    }
  });
  return stamps.join(",");
}

/**
 * {@link linkedEtcPaths}, kept in `cacheFile` until a package is installed or removed (the
 * package database changes) or /etc, /usr or /opt themselves change: finding the links reads all
 * of /usr (a third of a second warm, seconds cold), which a daemon start should not pay each time.
 */
export async function cachedLinkedEtcPaths(cacheFile: string, roots: string[] = ["/usr", "/opt"]): Promise<string[]> {
  const key = fingerprint(roots);
  try {
    const cached = JSON.parse(readFileSync(cacheFile, "utf8")) as { key: string; binds: string[] };
    // Checked again on use: a cache file is only a list of candidates.
    if (cached.key === key && Array.isArray(cached.binds)) return cached.binds.filter((p) => typeof p === "string" && p.startsWith("/etc/") && safeTarget(p));
  } catch {
    // No cache yet, or an unreadable one: compute.
  }
  const binds = await linkedEtcPaths(roots);
  try {
    mkdirSync(dirname(cacheFile), { recursive: true, mode: 0o755 });
    const tmp = `${cacheFile}.${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ key, binds }), { mode: 0o644 });
    renameSync(tmp, cacheFile);
  } catch {
    // A cache we cannot write costs the next start a walk, nothing more.
  }
  return binds;
}
