#!/usr/bin/env node
// Probe (issue 11 item 2): what each way of giving a sandbox capped writable storage costs on the
// create path and at teardown, measured here, interleaved. Run as root: node bench/probes/storage.mjs [n]
//   image:   today's path: sparse image, mkfs.ext4, loop mount, lost+found out, home + tmp made
//   claim:   an image formatted and mounted ahead of time (in the background): chown of its 3 dirs
//   mount:   an image formatted ahead of time, mounted at claim (mount + chown)
//   project: one shared ext4 with project quotas: mkdir home + tmp, chattr +P -p, setquota -P. Kernels
//            without CONFIG_QFMT_V2 (and CONFIG_XFS_QUOTA), like this one, cannot mount a file system
//            with the quota or project features at all: then the directory setup runs on a plain
//            shared ext4 and two execs of /bin/true stand in for chattr and setquota (a lower bound)
//   grow:    online resize2fs of a mounted, pre-formatted image from 10 GiB to 20 GiB
//   teardown: umount --lazy + rm of the image (per-sandbox images) / rm -r of a project dir
import { execFile, execFileSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const N = Number(process.argv[2] ?? 15);
const GiB = 2 ** 30;
const now = () => performance.now();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.ceil(0.9 * xs.length) - 1];
const dir = mkdtempSync("/var/tmp/sbx-storage-probe-");
const uid = 299_999;
const inodes = (bytes) => String(Math.max(1024, Math.min(4_000_000, Math.floor(bytes / 8192))));
const MKFS = (bytes, extra = []) => ["-q", "-F", "-m", "0", "-N", inodes(bytes), "-O", "^has_journal", ...extra, "-E", `lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=${uid}:${uid}`];

async function format(image, bytes, extra) {
  writeFileSync(image, "", { mode: 0o600 });
  truncateSync(image, bytes);
  await run("mkfs.ext4", [...MKFS(bytes, extra), image]);
}
async function layout(root) {
  rmSync(join(root, "lost+found"), { recursive: true, force: true });
  mkdirSync(join(root, "home"), { mode: 0o755 });
  mkdirSync(join(root, "tmp"), { mode: 0o1777 });
}
const claim = (root) => {
  for (const p of [root, join(root, "home"), join(root, "tmp")]) chownSync(p, uid, uid);
};

async function teardownImage(root, image) {
  await run("umount", ["--lazy", root]);
  rmSync(root, { recursive: true, force: true });
  rmSync(image, { force: true });
}

const T = { image: [], claim: [], mount: [], project: [], grow: [], mkfsOnly: [], mountOnly: [], tdImage: [], tdProject: [] };
let k = 0;
let growRefused = null;
// The shared project-quota file system, once.
const shared = join(dir, "shared"), sharedImg = `${shared}.img`;
const quotas = /QFMT_V2=y|XFS_QUOTA=y/.test((() => { try { return execFileSync("sh", ["-c", "zcat /proc/config.gz || cat /boot/config-$(uname -r)"], { encoding: "utf8" }); } catch { return ""; } })());
await format(sharedImg, 100 * GiB, quotas ? ["-O", "quota,project", "-I", "256"] : []);
mkdirSync(shared);
await run("mount", ["-o", `loop,nosuid,nodev,noatime${quotas ? ",prjquota" : ""}`, sharedImg, shared]);
try {
  for (let i = 0; i < N; i++) {
    // today's path
    let root = join(dir, `a${k++}`), image = `${root}.img`;
    let t0 = now();
    await format(image, 10 * GiB);
    const t1 = now();
    mkdirSync(root);
    await run("mount", ["-o", "loop,nosuid,nodev,noatime,errors=remount-ro", image, root]);
    const t2 = now();
    await layout(root);
    claim(root);
    T.image.push(now() - t0);
    T.mkfsOnly.push(t1 - t0);
    T.mountOnly.push(t2 - t1);
    t0 = now();
    await teardownImage(root, image);
    T.tdImage.push(now() - t0);

    // pre-formatted and mounted in the background: claim = chown
    root = join(dir, `b${k++}`), image = `${root}.img`;
    await format(image, 10 * GiB);
    mkdirSync(root);
    await run("mount", ["-o", "loop,nosuid,nodev,noatime,errors=remount-ro", image, root]);
    await layout(root);
    t0 = now();
    claim(root);
    T.claim.push(now() - t0);
    // online grow of that mounted image
    t0 = now();
    truncateSync(image, 20 * GiB);
    const loop = (await run("losetup", ["-j", image])).stdout.split(":")[0];
    await run("losetup", ["-c", loop]);
    try {
      await run("resize2fs", [loop]);
      T.grow.push(now() - t0);
    } catch (err) {
      // EXT4_IOC_RESIZE_FS needs CAP_SYS_RESOURCE: a root without it (a container) cannot grow online.
      growRefused = String(err.stderr ?? err.message).trim().split("\n").pop();
    }
    await teardownImage(root, image);

    // pre-formatted, mounted at claim
    root = join(dir, `c${k++}`), image = `${root}.img`;
    await format(image, 10 * GiB);
    t0 = now();
    mkdirSync(root);
    await run("mount", ["-o", "loop,nosuid,nodev,noatime,errors=remount-ro", image, root]);
    await layout(root);
    claim(root);
    T.mount.push(now() - t0);
    await teardownImage(root, image);

    // project quota in the shared file system
    const id = 1000 + i;
    const p = join(shared, `p${id}`);
    t0 = now();
    mkdirSync(p, { mode: 0o700 });
    if (!quotas) await run("/bin/true", []), await run("/bin/true", []);
    if (quotas) await run("chattr", ["+P", "-p", String(id), p]);
    if (quotas) await run("setquota", ["-P", String(id), String(10 * 2 ** 20), String(10 * 2 ** 20), inodes(10 * GiB), inodes(10 * GiB), shared]);
    await layout(p);
    claim(p);
    T.project.push(now() - t0);
    writeFileSync(join(p, "home", "f"), Buffer.alloc(1 << 20));
    t0 = now();
    rmSync(p, { recursive: true, force: true });
    if (quotas) await run("setquota", ["-P", String(id), "0", "0", "0", "0", shared]);
    T.tdProject.push(now() - t0);
  }
} finally {
  for (const line of execFileSync("findmnt", ["-rn", "-o", "TARGET"], { encoding: "utf8" }).split("\n")) if (line.startsWith(dir)) await run("umount", ["--lazy", line]).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
const row = (name, xs) => console.log(`${name.padEnd(48)} ${median(xs).toFixed(2).padStart(7)} ms  (p90 ${p90(xs).toFixed(2)}, n=${xs.length})`);
console.log(`storage probe, ${N} rounds interleaved${quotas ? "" : " (no quota support in this kernel: project rows without setquota)"}, load ${execFileSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).split(" ")[0]}`);
row("per-sandbox image, on the create path (today)", T.image);
row("  of which mkfs.ext4 (10 GiB sparse)", T.mkfsOnly);
row("  of which the loop mount", T.mountOnly);
row("pre-formatted + pre-mounted image: claim", T.claim);
row("pre-formatted image, mounted at claim", T.mount);
row(`shared fs, project quota${quotas ? "" : " (2 × true for chattr, setquota)"}`, T.project);
if (growRefused) console.log(`${"online grow of a mounted image, 10 → 20 GiB".padEnd(48)} refused: ${growRefused}`);
else row("online grow of a mounted image, 10 → 20 GiB", T.grow);
row("teardown: umount --lazy + rm image", T.tdImage);
row("teardown: rm -r project dir", T.tdProject);
