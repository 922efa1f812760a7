import { spawn, type ChildProcess } from "node:child_process";

/**
 * Runs once its stdin reaches EOF, which happens when the daemon exits for any reason,
 * SIGKILL included: detaches every storage mount below $1 and removes the mount points.
 */
const SCRIPT = `
while read -r _; do :; done
awk -v p="$1/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount --lazy "$m"; done
for d in "$1"/*; do [ -d "$d" ] && rmdir "$d"; done
exit 0
`;

/**
 * A small process outliving the daemon to undo what the kernel would not: host mounts. The
 * daemon holds the write end of its stdin; when the daemon dies that end closes.
 */
export function startReaper(mountDir: string): ChildProcess {
  const reaper = spawn("/bin/sh", ["-c", SCRIPT, "sbx-reaper", mountDir], { stdio: ["pipe", "ignore", "ignore"], detached: true });
  reaper.stdin!.on("error", () => {});
  reaper.unref();
  return reaper;
}
