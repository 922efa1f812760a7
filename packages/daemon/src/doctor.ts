import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { delimiter, join } from "node:path";
import { detectCgroups } from "./cgroups/cgroups.js";
import { dynmodsState } from "./cgroups/dynmods.js";
import { rootKernelProblem } from "./volumes/root.js";

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** The command (or step) that fixes it, when it failed. */
  fix?: string;
}

const readSysctl = (path: string): string | null => {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
};

export function findBwrap(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(delimiter)) {
    const path = join(dir, "bwrap");
    if (dir && existsSync(path)) return path;
  }
  return null;
}

function versionAtLeast(v: string, min: [number, number, number]): boolean {
  const parts = v.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const a = parts[i] ?? 0;
    if (a !== min[i]) return a > min[i]!;
  }
  return true;
}

/**
 * Checks that this host can isolate sandboxes the way sbx requires, and says how to fix
 * whatever is missing. The daemon refuses to start while any check fails: it never runs
 * code unconfined.
 */
export function checkHost(opts: { trialUid: number | null; rootMode: boolean }): Check[] {
  const checks: Check[] = [];
  const bwrap = findBwrap();
  checks.push(
    bwrap
      ? { name: "bubblewrap installed", ok: true, detail: bwrap }
      : { name: "bubblewrap installed", ok: false, detail: "bwrap is not on PATH", fix: "apt-get install -y bubblewrap   (Fedora: dnf install bubblewrap)" },
  );
  if (bwrap) {
    let version = "";
    try {
      version = execFileSync(bwrap, ["--version"], { encoding: "utf8" }).trim().split(" ").pop() ?? "";
    } catch {}
    const ok = versionAtLeast(version, [0, 8, 0]);
    checks.push({
      name: "bubblewrap >= 0.8.0 (--disable-userns, --size, --ro-bind-fd)",
      ok,
      detail: version || "unknown version",
      ...(ok ? {} : { fix: "install bubblewrap 0.8.0 or newer from your distribution's backports" }),
    });
  }
  const maxNs = readSysctl("/proc/sys/user/max_user_namespaces");
  checks.push(
    maxNs !== null && Number(maxNs) > 0
      ? { name: "user namespaces enabled", ok: true, detail: `user.max_user_namespaces = ${maxNs}` }
      : { name: "user namespaces enabled", ok: false, detail: `user.max_user_namespaces = ${maxNs ?? "missing"}`, fix: "sysctl -w user.max_user_namespaces=28633" },
  );
  const clone = readSysctl("/proc/sys/kernel/unprivileged_userns_clone");
  if (clone === "0") {
    checks.push({ name: "unprivileged user namespaces", ok: false, detail: "kernel.unprivileged_userns_clone = 0", fix: "sysctl -w kernel.unprivileged_userns_clone=1" });
  }
  const apparmor = readSysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  if (apparmor === "1") {
    checks.push({
      name: "AppArmor allows user namespaces for bwrap",
      ok: false,
      detail: "kernel.apparmor_restrict_unprivileged_userns = 1",
      fix: "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0   (or install an AppArmor profile granting bwrap 'userns')",
    });
  }
  // prlimit raises the daemon's own open-file limit at start (sandboxes' limits are set by sbx-launch).
  checks.push(
    existsSync("/usr/bin/prlimit")
      ? { name: "prlimit (util-linux)", ok: true, detail: "/usr/bin/prlimit" }
      : { name: "prlimit (util-linux)", ok: false, detail: "/usr/bin/prlimit is missing", fix: "apt-get install -y util-linux" },
  );
  if (opts.rootMode) {
    const mkfs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"].find((p) => existsSync(p));
    checks.push(
      mkfs && existsSync("/dev/loop-control")
        ? { name: "disk-backed sandbox storage (ext4 on loop devices)", ok: true, detail: mkfs }
        : {
            name: "disk-backed sandbox storage (ext4 on loop devices)",
            ok: false,
            detail: mkfs ? "/dev/loop-control is missing" : "mkfs.ext4 is missing",
            fix: mkfs ? "modprobe loop (or run the daemon where loop devices are available)" : "apt-get install -y e2fsprogs",
          },
    );
    const cg = detectCgroups();
    checks.push(
      typeof cg === "string"
        ? {
            name: "cgroups (memory, cpu, pids)",
            ok: false,
            detail: cg,
            fix: "enable the controllers: on cgroup v2 `echo '+memory +cpu +pids' > /sys/fs/cgroup/cgroup.subtree_control`; on v1 mount each hierarchy (`mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory`, likewise cpu,cpuacct and pids), or boot with systemd.unified_cgroup_hierarchy=1",
          }
        : { name: "cgroups (memory, cpu, pids)", ok: true, detail: `cgroup v${cg.version} under ${cg.baseDirs.join(", ")}` },
    );
    // An optional feature: reported, never a failure.
    const noRoot = rootKernelProblem("snapshot");
    checks.push({ name: "booting from an image (root)", ok: true, detail: noRoot ? `not on this host (roots are refused as Unsupported): ${noRoot}` : `Linux ${release()}: volume and snapshot roots` });
    // Speed, not safety: reported, never a failure (the daemon turns it on unless configured not to).
    checks.push({ name: "fast cgroup joins (favordynmods)", ok: true, detail: dynmodsState().detail });
  } else {
    checks.push({
      name: "cgroups",
      ok: true,
      detail: "rootless mode: not used; memory, CPU and pids caps are not enforced (run the daemon as root for them); open files and core dumps are capped with rlimits",
    });
  }
  if (bwrap && checks.every((c) => c.ok)) checks.push(trialRun(bwrap, opts.trialUid));
  return checks;
}

/** Runs a real, fully namespaced bwrap as the sandbox uid, the way every sandbox starts. */
function trialRun(bwrap: string, uid: number | null): Check {
  const args = [
    "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup",
    "--uid", "1000", "--gid", "1000", "--die-with-parent", "--new-session", "--disable-userns", "--cap-drop", "ALL",
    "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
    "--proc", "/proc", "--dev", "/dev", "--size", "1048576", "--tmpfs", "/tmp", "/usr/bin/true",
  ];
  const res = spawnSync(bwrap, args, { encoding: "utf8", timeout: 10_000, ...(uid !== null ? { uid, gid: uid } : {}) });
  if (res.status === 0) return { name: "namespaced trial sandbox", ok: true, detail: `ran /usr/bin/true as host uid ${uid ?? process.getuid?.()}` };
  return {
    name: "namespaced trial sandbox",
    ok: false,
    detail: (res.stderr || res.error?.message || `exit ${res.status}`).trim(),
    fix: "see the detail: usually user namespaces are restricted (sysctl) or a container runtime blocks them (run with --privileged or a seccomp profile allowing unshare)",
  };
}

export function formatChecks(checks: Check[]): string {
  return checks.map((c) => `${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}${c.fix ? `\n     fix: ${c.fix}` : ""}`).join("\n");
}
