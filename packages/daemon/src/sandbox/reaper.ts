import { spawn, type ChildProcess } from "node:child_process";

/**
 * Runs once its stdin reaches EOF, which happens when the daemon exits for any reason,
 * SIGKILL included: kills what is left in the sandbox cgroups below $2..., removes them,
 * then detaches every storage mount below $1 and removes the mount points and disk images.
 */
const SCRIPT = `
while read -r _; do :; done
mnt=$1; shift
for base do
  for cg in "$base"/*/; do
    [ -d "$cg" ] || continue
    for i in 1 2 3 4 5 6 7 8 9 10; do
      for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
      rmdir "$cg" 2>/dev/null && break
      sleep 0.1
    done
  done
  rmdir "$base" 2>/dev/null
done
awk -v p="$mnt/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount --lazy "$m"; done
for d in "$mnt"/*; do if [ -d "$d" ]; then rmdir "$d"; else rm -f "$d"; fi; done
exit 0
`;

/**
 * A small process outliving the daemon to undo what the kernel would not: host mounts. The
 * daemon holds the write end of its stdin; when the daemon dies that end closes.
 */
export function startReaper(mountDir: string, cgroupDirs: string[]): ChildProcess {
  const reaper = spawn("/bin/sh", ["-c", SCRIPT, "sbx-reaper", mountDir, ...cgroupDirs], { stdio: ["pipe", "ignore", "ignore"], detached: true });
  reaper.stdin!.on("error", () => {});
  reaper.unref();
  return reaper;
}
