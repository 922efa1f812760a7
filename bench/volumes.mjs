// Volume snapshots: what taking one costs in time and host disk, with the state dir on ext4
// (no reflink, so a snapshot is a sparse copy) and on XFS with reflink (each file system made on
// a loop device for this run; XFS when mkfs.xfs exists), each beside its floor from the
// same run: `cp --sparse=always` of a plain file holding as much data, on the same file system.
// Also a snapshot of a volume made from a snapshot after 1 MiB changed (the "layered" case).
// Run: node bench/volumes.mjs  (VOL_DATA_MIB=256 VOL_N=5 by default; prints a Markdown table)
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "packages/daemon/dist/cli.js");
const { Client, Sandbox } = await import(pathToFileURL(join(ROOT, "packages/client/dist/index.js")).href);
const DATA_MIB = Number(process.env.VOL_DATA_MIB ?? 256);
const N = Number(process.env.VOL_N ?? 5);
const MiB = 2 ** 20;
const log = (...a) => console.error(`[bench volumes ${new Date().toISOString().slice(11, 19)}]`, ...a);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const freeBytes = (dir) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};
const sync = () => execFileSync("sync");

async function startDaemon(stateDir) {
  const config = `${stateDir}.json`;
  writeFileSync(config, JSON.stringify({ warmPool: 0, diskMinFree: 0, diskOvercommit: 100_000 }));
  const proc = spawn(process.execPath, [CLI, "daemon", "--listen", "127.0.0.1:0", "--state-dir", stateDir, "--config", config, "--quiet"], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  proc.stderr.on("data", (d) => (err += d));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (ws:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    proc.once("exit", (code) => reject(new Error(`daemon exited ${code}: ${err}`)));
  });
  const token = readFileSync(join(stateDir, "token"), "utf8").trim();
  return { opts: { url, token }, stop: () => new Promise((r) => (proc.once("exit", r), proc.kill("SIGTERM"))), config };
}

/** One file system: floor copies, then snapshots of a volume holding DATA_MIB of random data. */
async function measure(label, base) {
  log(`${label}: ${base}`);
  const stateDir = join(base, "state");
  execFileSync("chmod", ["0711", base]);
  const d = await startDaemon(stateDir);
  const client = new Client(d.opts);
  try {
    await client.volumes.create({ slug: "bench-src", capacity: `${DATA_MIB * 4}MiB` });
    {
      const sb = await Sandbox.create({ ...d.opts, disk: "64MiB", volumes: { "/data": "bench-src" } });
      await sb.sh`head -c ${String(DATA_MIB * MiB)} /dev/urandom > /data/blob`;
      await sb.kill();
    }
    // The floor: the same amount of data in a plain file, copied the way the daemon copies images.
    const plain = join(base, "plain.bin");
    execFileSync("sh", ["-c", `head -c ${DATA_MIB * MiB} /dev/urandom > '${plain}'`]);
    sync();
    const floor = [];
    const floorDisk = [];
    for (let i = 0; i < N; i++) {
      const before = freeBytes(base);
      const t = performance.now();
      execFileSync("cp", ["--reflink=auto", "--sparse=always", plain, `${plain}.${i}`]);
      floor.push(performance.now() - t);
      sync();
      floorDisk.push(before - freeBytes(base));
    }
    const snap = [];
    const snapDisk = [];
    for (let i = 0; i < N; i++) {
      sync();
      const before = freeBytes(base);
      const t = performance.now();
      await client.volumes.snapshot("bench-src", { slug: `bench-snap-${i}` });
      snap.push(performance.now() - t);
      sync();
      snapDisk.push(before - freeBytes(base));
    }
    // Layered: a volume from the first snapshot, 1 MiB changed, snapshotted again.
    const tv = performance.now();
    await client.volumes.create({ slug: "bench-layer", capacity: `${DATA_MIB * 4}MiB`, from: "bench-snap-0" });
    const fromMs = performance.now() - tv;
    {
      const sb = await Sandbox.create({ ...d.opts, disk: "64MiB", volumes: { "/data": "bench-layer" } });
      await sb.sh`head -c 1048576 /dev/urandom | dd of=/data/blob bs=1M count=1 conv=notrunc 2>/dev/null; sync`;
      await sb.kill();
    }
    sync();
    const beforeLayer = freeBytes(base);
    await client.volumes.snapshot("bench-layer", { slug: "bench-layer-snap" });
    sync();
    const layerDisk = beforeLayer - freeBytes(base);
    const image = statSync(join(stateDir, "volumes", `${(await client.volumes.get("bench-src")).id}.img`)).blocks * 512;
    return { label, floorMs: median(floor), snapMs: median(snap), floorDisk: median(floorDisk), snapDisk: median(snapDisk), fromMs, layerDisk, image };
  } finally {
    await d.stop();
    rmSync(d.config, { force: true });
  }
}

/**
 * Each file system is made for this run on a loop device, so nothing else on the machine writes to
 * it and its free-space change is the snapshot's true cost.
 */
async function onLoop(label, mkfs) {
  const dir = mkdtempSync(join(tmpdir(), "sbx-bench-vol-"));
  const img = `${dir}.img`;
  try {
    execFileSync("truncate", ["-s", `${Math.max(8, Math.ceil((DATA_MIB * (2 * N + 8)) / 1024))}G`, img]);
    execFileSync(mkfs[0], [...mkfs.slice(1), img]);
    execFileSync("mount", ["-o", "loop", img, dir]);
    return await measure(label, dir);
  } finally {
    execFileSync("sh", ["-c", `umount '${dir}'/state/mnt/* '${dir}'/state/volumes/mnt/* 2>/dev/null; umount '${dir}'; true`]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(img, { force: true });
  }
}

const rows = [await onLoop("ext4 (no reflink: sparse copy)", ["mkfs.ext4", "-q", "-F"])];
let xfs = true;
try {
  execFileSync("mkfs.xfs", ["-V"], { stdio: "ignore" });
} catch {
  xfs = false;
  log("no mkfs.xfs: the reflink row is skipped (install xfsprogs)");
}
if (xfs) rows.push(await onLoop("XFS with reflink=1", ["mkfs.xfs", "-q", "-m", "reflink=1"]));

const mib = (b) => `${(b / MiB).toFixed(1)} MiB`;
console.log(`\n### Volume snapshots (${DATA_MIB} MiB of data in the volume, median of ${N})\n`);
console.log("| state dir's file system | snapshot | floor: cp of a plain file | ratio | host disk per snapshot | floor's disk | volume from snapshot | snapshot after 1 MiB changed: disk |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.label} | ${r.snapMs.toFixed(0)} ms | ${r.floorMs.toFixed(0)} ms | ${(r.snapMs / r.floorMs).toFixed(2)}× | ${mib(r.snapDisk)} | ${mib(r.floorDisk)} | ${r.fromMs.toFixed(0)} ms | ${mib(r.layerDisk)} |`);
}
