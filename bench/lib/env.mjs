// What every bench module shares: where the measured tree is, what it exports, and this run's sizes.
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export const BENCH = join(dirname(fileURLToPath(import.meta.url)), "..");
export const ROOT = process.env.BENCH_ROOT ? resolve(process.env.BENCH_ROOT) : join(BENCH, "..");
export const CLI = process.env.BENCH_CLI ?? join(ROOT, "packages/daemon/dist/cli.js");
/** The native supervisor as built; the floors replay the bytes a live sandbox got when they can. */
export const SUPERVISOR = join(ROOT, "packages/daemon/dist/sbx-supervisor");
/** Its name in /proc/<pid>/status: bwrap execs it as /.sbx/supervisor. */
export const SUPERVISOR_NAME = "supervisor";

export const requireFromClient = createRequire(join(ROOT, "packages/client/package.json"));
export const WebSocket = requireFromClient("ws");
export const { Sandbox } = await import(pathToFileURL(join(ROOT, "packages/client/dist/index.js")).href);
export const daemonModule = await import(pathToFileURL(join(ROOT, "packages/daemon/dist/index.js")).href);

setFlagsFromString("--expose-gc");
export const gc = runInNewContext("gc");

export const QUICK = process.env.QUICK === "1" || process.env.BENCH_QUICK === "1";
export const MiB = 1 << 20;
/** Sample counts and sizes; QUICK is a smoke run that only shows the bench still works. */
export const CFG = QUICK
  ? { coldN: 5, warmN: 5, parN: 2, parWidth: 20, rttN: 40, stdoutBytes: 64 * MiB, fileBytes: 64 * MiB, reps: 2, idleN: 6, floorIdleN: 2, hardN: 3, hardRttReps: 1, hardRttN: 50, etcN: 5, etcLive: 20 }
  : { coldN: 30, warmN: 30, parN: 8, parWidth: 20, rttN: 300, stdoutBytes: 1024 * MiB, fileBytes: 1024 * MiB, reps: 3, idleN: 200, floorIdleN: 5, hardN: 40, hardRttReps: 6, hardRttN: 100, etcN: 30, etcLive: 200 };
// ETC_LIVE=N: rows 1k-1n with N live sandboxes instead
if (process.env.ETC_LIVE) CFG.etcLive = Number(process.env.ETC_LIVE);
// BENCH_MIB=N: transfers of N MiB in rows 3 and 4 (for bench/streams.mjs iterations; the full bench's figures use the default)
if (process.env.BENCH_MIB) CFG.stdoutBytes = CFG.fileBytes = Number(process.env.BENCH_MIB) * MiB;

export const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => performance.now();
