/**
 * Where a volume may be mounted inside a sandbox. The path is the caller's, so it is checked as
 * hostile: absolute and already normalized (no ".", "..", "//" or trailing "/" for bwrap to
 * resolve differently than read here), plain characters only, and never over what the sandbox's
 * isolation is built from (the host's read-only /usr and libraries, /etc, /proc, /dev, /sys, the
 * supervisor and proxy socket under /.sbx) nor over home, /tmp or / as a whole.
 */

/** Paths a volume can be neither at nor below. */
const SYSTEM = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc", "/dev", "/sys", "/.sbx", "/run", "/var/tmp", "/boot", "/root"];
/** Paths a volume can be below but not at: replacing them would hide the sandbox's own storage. */
const CONTAINERS = ["/", "/home", "/home/user", "/home/sandbox", "/tmp", "/var"];

const SEGMENT = /^[A-Za-z0-9._@+=,-]+$/;

/** Why `path` cannot be a mount point, or null if it can. */
export function mountPathProblem(path: string): string | null {
  if (!path.startsWith("/")) return `'${clip(path)}' is not absolute: mount paths start with "/"`;
  if (path.length > 256) return "is longer than 256 characters";
  if (CONTAINERS.includes(path)) return `'${path}' cannot be a mount point: a volume there would hide the sandbox's own files; use a directory below it`;
  const segments = path.slice(1).split("/");
  for (const seg of segments) {
    if (seg === "") return `'${clip(path)}' is not normalized: no "//" or trailing "/"`;
    if (seg === "." || seg === "..") return `'${clip(path)}' is not normalized: no "." or ".." segments`;
    if (!SEGMENT.test(seg)) return `'${clip(path)}' has a segment with characters other than letters, digits and . _ @ + = , -`;
  }
  if (segments.length > 16) return "is more than 16 levels deep";
  const system = SYSTEM.find((dir) => path === dir || path.startsWith(`${dir}/`));
  if (system) return `'${clip(path)}' is ${path === system ? "" : "below "}${system}, which the sandbox's isolation is built from`;
  return null;
}

/** Two mount paths of one sandbox where one would be inside the other (or the same). */
export function overlapping(paths: readonly string[]): [string, string] | null {
  for (const a of paths) for (const b of paths) if (a !== b && b.startsWith(`${a}/`)) return [a, b];
  return null;
}

const clip = (s: string) => JSON.stringify(s.slice(0, 80)).slice(1, -1);
