#!/usr/bin/env node
// Rows 3 and 4-4e alone (process stdout, file upload and download, each beside raw `ws` loopback),
// for iterating on the stream path: `node bench/streams.mjs` (QUICK=1: 64 MiB transfers). Prints
// the medians and the ratios the full bench (bench/run.mjs) reports for these rows; writes nothing.
import { loadavg } from "node:os";
import { CFG, MiB, Sandbox, log } from "./lib/env.mjs";
import { startDaemon } from "./lib/daemon.mjs";
import { mbs } from "./lib/stats.mjs";
import { startWsPeer } from "./lib/ws.mjs";
import { measureFiles } from "./rows/files.mjs";
import { measureStdout } from "./rows/stdout.mjs";

if (process.getuid?.() !== 0) throw new Error("run as root: sandboxes run as their own host uids");
const load0 = loadavg()[0].toFixed(2);
const d = await startDaemon({ warmPool: 0 });
const peer = await startWsPeer();
let out, files;
try {
  const sb = await Sandbox.create(d.opts);
  out = await measureStdout(d, sb, peer);
  files = await measureFiles(d, sb, peer); // kills sb
} finally {
  await peer.stop();
  await d.stop();
}
const pct = (a, b) => `${((100 * a.median) / b.median).toFixed(0)} %`;
console.log(`load ${load0} → ${loadavg()[0].toFixed(2)}; ${CFG.stdoutBytes / MiB} MiB stdout, ${CFG.fileBytes / MiB} MiB files, ${CFG.reps} reps`);
console.log(`3  stdout ${mbs(out.sdk)} vs raw ws down ${mbs(out.floor)}: ${pct(out.sdk, out.floor)}; RSS growth client ${out.clientGrowth.toFixed(1)} MB, daemon ${out.daemonGrowth.toFixed(1)} MB`);
console.log(`4  upload ${mbs(files.up)} vs raw ws up ${mbs(files.upFloor)}: ${pct(files.up, files.upFloor)}; RSS growth client ${files.growth.upClient.toFixed(1)} MB, daemon ${files.growth.upDaemon.toFixed(1)} MB`);
console.log(`4d dd into the same storage inside the sandbox ${mbs(files.dd)}: upload is ${pct(files.up, files.dd)} of it`);
console.log(`4e upload to a tmpfs inside the sandbox ${mbs(files.upTmpfs)}: ${pct(files.upTmpfs, files.upFloor)} of raw ws up`);
console.log(`4a download ${mbs(files.down)} vs raw ws down ${mbs(files.downFloor)}: ${pct(files.down, files.downFloor)}; RSS growth client ${files.growth.downClient.toFixed(1)} MB, daemon ${files.growth.downDaemon.toFixed(1)} MB`);
log("done");
