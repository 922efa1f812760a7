/**
 * System users for tests that need a second, unprivileged uid (a daemon run as "someone else").
 * Each test file uses a name of its own. The user is removed when the test is done unless a
 * process still runs as it: then another run (say, from another checkout) is using the same
 * name, and the last one out removes it.
 */
import { spawnSync } from "node:child_process";

export interface SystemUser {
  name: string;
  uid: number;
  /** Removes the user (and its group) unless a process still runs as it. Call after stopping yours. */
  remove(): Promise<void>;
}

function uidOf(name: string): number | null {
  const res = spawnSync("id", ["-u", name], { encoding: "utf8" });
  return res.status === 0 ? Number(res.stdout.trim()) : null;
}

/** Creates (or finds) system user `name`, with no home and no login shell. Needs root. */
export function systemUser(name: string): SystemUser {
  if (process.getuid?.() !== 0) throw new Error(`creating the test user ${name} needs root (the suite runs as root; CI does)`);
  let uid = uidOf(name);
  if (uid === null) {
    const res = spawnSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], { encoding: "utf8" });
    // 9: made by a concurrent run a moment ago.
    if (res.status !== 0 && res.status !== 9) throw new Error(`useradd ${name} failed (${res.status}): ${res.stderr}`);
    uid = uidOf(name);
    if (uid === null) throw new Error(`useradd ${name} succeeded but id -u does not know the user`);
  }
  return {
    name,
    uid,
    async remove() {
      // A sandbox's last processes may take a moment to go after their daemon stopped.
      for (let i = 0; i < 40; i++) {
        const res = spawnSync("userdel", [name], { encoding: "utf8" });
        if (res.status === 0 || res.status === 6) return; // removed, or already gone
        if (res.status !== 8) throw new Error(`userdel ${name} failed (${res.status}): ${res.stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // 8 for two seconds: a process of another run still uses the user; that run removes it.
      const running = spawnSync("ps", ["-o", "pid=,args=", "-u", name], { encoding: "utf8" }).stdout.trim();
      if (!running) throw new Error(`userdel ${name} kept saying the user is in use, yet no process runs as it`);
    },
  };
}
