import { readFileSync } from "node:fs";

/** mountinfo escapes space, tab, newline and backslash as octal. */
export const unescapeMountPath = (p: string): string => p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

export const readMountinfo = (): string => readFileSync("/proc/self/mountinfo", "utf8");

/** The mount point of each line of `mountinfo`, escapes undone, in the kernel's order (parents first). */
export function mountPoints(mountinfo = readMountinfo()): string[] {
  return mountinfo
    .split("\n")
    .map((line) => unescapeMountPath(line.split(" ")[4] ?? ""))
    .filter((p) => p !== "");
}

/**
 * The source of the file system mounted at `mountPoint` (for a loop mount, its /dev/loopN), or
 * null when nothing is mounted there. The last mount at a path is the one seen there.
 */
export function mountSource(mountPoint: string, mountinfo = readMountinfo()): string | null {
  let source: string | null = null;
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0 || unescapeMountPath(line.split(" ")[4] ?? "") !== mountPoint) continue;
    source = unescapeMountPath(line.slice(sep + 3).split(" ")[1] ?? "") || null;
  }
  return source;
}
