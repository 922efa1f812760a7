// Rows 4: file upload and download through the SDK, beside raw `ws` client→server and server→client.
import { CFG, MiB, Sandbox, log } from "../lib/env.mjs";
import { tput, mbs } from "../lib/stats.mjs";
import { waitNoSandboxProcs, withRssPeak } from "../lib/proc.mjs";
import { sandboxDd, sdkDownload, sdkUpload, within } from "../lib/sdk.mjs";

/** A tmpfs every sandbox has (bwrap's /dev, the sandbox user's own); its pages count in the sandbox's memory cgroup, so it is removed after each upload. */
const TMPFS_PATH = "/dev/shm/bench.bin";

/**
 * `fs.writeFile` from a stream, then `fs.readFileStream`, CFG.reps times after a 64 MiB warm-up,
 * each beside its floor. A sandbox that dies on the way is replaced; every sandbox used is
 * killed at the end (the one passed in included).
 */
export async function measureFiles(d, sb, peer) {
  const path = "/home/user/bench.bin";
  const limitMs = 120_000;
  let box = sb;
  const replace = async (why) => {
    log(`   replacing the sandbox: ${why}`);
    await box.kill().catch(() => {});
    box = await Sandbox.create(d.opts);
  };
  const up = [], down = [], upFloor = [], upZeroKey = [], downFloor = [], dd = [], upTmpfs = [];
  const failed = { up: [], down: [] };
  const growth = { upClient: 0, upDaemon: 0, downClient: 0, downDaemon: 0 };
  // rep -1 is a 64 MiB warm-up, not recorded
  for (let i = -1; i < CFG.reps; i++) {
    const size = i < 0 ? 64 * MiB : CFG.fileBytes;
    upFloor.push(await peer.upload(size, 64 * 1024));
    upZeroKey.push(await peer.upload(size, 64 * 1024, { zeroKey: true }));
    try {
      const u = await withRssPeak(d.proc.pid, () => within(sdkUpload(box, path, size), limitMs, "fs.writeFile"));
      if (i >= 0) {
        up.push(u.result);
        growth.upClient = Math.max(growth.upClient, u.clientGrowth);
        growth.upDaemon = Math.max(growth.upDaemon, u.daemonGrowth);
      }
    } catch (err) {
      if (i >= 0) failed.up.push(err.message);
      log(`   upload failed: ${err.message}`);
      await replace("after a failed upload");
      continue;
    }
    // the storage's own pace for the same write (row 4d), right after the upload it explains
    dd.push(await within(sandboxDd(box, path, size), limitMs, "dd"));
    downFloor.push(await peer.download(size, 64 * 1024));
    const dl = await withRssPeak(d.proc.pid, () => within(sdkDownload(box, path, size), limitMs, "fs.readFileStream"));
    if (i >= 0) {
      down.push(dl.result.rate);
      growth.downClient = Math.max(growth.downClient, dl.clientGrowth);
      growth.downDaemon = Math.max(growth.downDaemon, dl.daemonGrowth);
      if (dl.result.error) failed.down.push(`${dl.result.error} (after ${(dl.result.bytes / MiB).toFixed(0)} MiB)`);
    }
    if (dl.result.error) {
      log(`   download aborted after ${(dl.result.bytes / MiB).toFixed(0)} MiB: ${dl.result.error}`);
      const alive = await box.fs.stat(path).then(() => true, () => false);
      if (!alive) await replace("the sandbox died during the download");
    }
    // The same upload into a tmpfs inside the sandbox (row 4e): the pipeline without the storage's
    // cost. After the download: its gigabyte of shared memory counts in the sandbox's memory limit,
    // and before the download it pushed the file just written out of the page cache, so the
    // download read the loop device instead of measuring the stream.
    upTmpfs.push(await within(sdkUpload(box, TMPFS_PATH, size), limitMs, "fs.writeFile to tmpfs"));
    await box.fs.remove(TMPFS_PATH);
  }
  upFloor.shift();
  upZeroKey.shift();
  downFloor.shift();
  dd.shift();
  upTmpfs.shift();
  await box.fs.remove(path).catch(() => {});
  const files = { up: tput(up), down: tput(down), upFloor: tput(upFloor), upZeroKey: tput(upZeroKey), downFloor: tput(downFloor), dd: tput(dd), upTmpfs: tput(upTmpfs), growth, failed };
  log(`   up ${mbs(files.up)} vs ${mbs(files.upFloor)} (key 0: ${mbs(files.upZeroKey)}; dd in the sandbox ${mbs(files.dd)}, to a tmpfs ${mbs(files.upTmpfs)}); down ${mbs(files.down)} vs ${mbs(files.downFloor)}; failures ${JSON.stringify(failed)}`);
  await box.kill().catch(() => {});
  if (box !== sb) await sb.kill().catch(() => {});
  await waitNoSandboxProcs();
  return files;
}
