// Start speed from an image (issue 15 item 5): Sandbox.create → first spawn("true") for a
// sandbox booted from a snapshot root and from a volume root, beside a default sandbox (the
// host's /usr) started the same way in the same run, interleaved; every create cold (pool off).
// The image is a small root file system made from the host's programs (the tests' mini-root.sh,
// owned by root as a distribution's). Writes its section of bench/RESULTS.md.
// Run: node bench/images.mjs  (IMG_N=40 samples each by default)
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { BENCH, ROOT, log, sleep } from "./lib/env.mjs";
import { startDaemon } from "./lib/daemon.mjs";
import { sdkColdStart } from "./lib/sdk.mjs";
import { stats, ms } from "./lib/stats.mjs";
import { waitNoSandboxProcs } from "./lib/proc.mjs";

const { Client, Sandbox, InUseError } = await import(pathToFileURL(join(ROOT, "packages/client/dist/index.js")).href);
const N = Number(process.env.IMG_N ?? 40);
const RESULTS = join(BENCH, "RESULTS.md");
const MINI_ROOT = readFileSync(join(ROOT, "packages/daemon/test/volumes/mini-root.sh"), "utf8");
const TARGET = 1.3;

async function untilFree(fn) {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof InUseError) || i > 200) throw err;
      await sleep(50);
    }
  }
}

/** A volume holding the small root (root's files, the user's home), and a snapshot of it. */
async function makeImage(d) {
  const client = new Client(d.opts);
  await client.volumes.create({ slug: "bench-root", capacity: "256MiB" });
  const maker = await Sandbox.create({ ...d.opts, volumes: { "/data": "bench-root" } });
  const made = await (await maker.spawn("bash", { args: ["-c", MINI_ROOT], stdout: "piped", stderr: "piped" })).output();
  if (!made.status.success) throw new Error(`making the root failed: ${made.stderrText}`);
  await maker.kill();
  await untilFree(async () => {
    const sb = await Sandbox.create({ ...d.opts, root: "bench-root" });
    await sb.sh`chown -R 0:0 / 2>/dev/null; chown -R 1000:1000 /home/sandbox`.sudo().noThrow();
    await sb.kill();
  });
  await untilFree(() => client.volumes.snapshot("bench-root", { slug: "bench-root-s" }));
}

/** Waits until the daemon logs a sandbox ready in a warm pool after `since` (its default one, or an image's). */
async function pooledAfter(d, since, what) {
  for (let i = 0; i < 400; i++) {
    if (d.logs().slice(since).includes(what)) return;
    await sleep(25);
  }
  throw new Error(`no sandbox became ready (${what})`);
}

/**
 * Creates served by warm pools: the default pool's and an image's (imageWarmPool), interleaved;
 * after each create (and kill) the next waits until its pool has booted a sandbox again.
 */
async function measurePooled(n) {
  const d = await startDaemon({ warmPool: 1, quiet: false, config: { imageWarmPool: 1 } });
  try {
    await makeImage(d);
    const kinds = { default: ["ready in the warm pool\n", {}], snapshot: ["ready in the warm pool of snapshot", { root: "bench-root-s" }] };
    const samples = { default: [], snapshot: [] };
    for (let i = 0; i < n + 3; i++) {
      for (const [kind, [ready, options]] of Object.entries(kinds)) {
        const since = d.logs().length;
        const r = await untilFree(() => sdkColdStart(d, options));
        await r.sb.kill();
        await pooledAfter(d, since, ready);
        await waitNoSandboxProcs(null, 5000).catch(() => {});
        if (i >= 3) samples[kind].push(r.total);
      }
    }
    return Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, stats(xs)]));
  } finally {
    await d.stop();
  }
}

const d = await startDaemon({ warmPool: 0 });
try {
  const loadStart = loadavg()[0].toFixed(2);
  await makeImage(d);
  const kinds = { default: {}, snapshot: { root: "bench-root-s" }, volume: { root: "bench-root" } };
  const samples = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
  const one = async (kind) => {
    const r = await untilFree(() => sdkColdStart(d, kinds[kind]));
    await r.sb.kill();
    await waitNoSandboxProcs();
    return r.total;
  };
  for (const kind of Object.keys(kinds)) for (let i = 0; i < 3; i++) await one(kind); // warm-up
  for (let i = 0; i < N; i++) for (const kind of Object.keys(kinds)) samples[kind].push(await one(kind));
  const st = Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, stats(xs)]));
  const ratio = (k) => st[k].median / st.default.median;
  await d.stop();
  const pooled = await measurePooled(Math.min(N, 20));
  const pooledRatio = pooled.snapshot.median / pooled.default.median;
  log(`default ${ms(st.default)}; snapshot root ${ms(st.snapshot)} (${ratio("snapshot").toFixed(2)}×); volume root ${ms(st.volume)} (${ratio("volume").toFixed(2)}×)`);
  const section = [
    `<!-- images:start (bench/images.mjs, ${new Date().toISOString()}; ${cpus().length} cores; load ${loadStart} → ${loadavg()[0].toFixed(2)}) -->`,
    "## Starting from an image (`root`)",
    "",
    `\`Sandbox.create()\` → first \`spawn("true")\` exit status, every create cold (warm pool off), the three kinds interleaved, ${N} samples each after 3 warm-ups; the floor is a default sandbox (the host's /usr) started the same way in the same run. The image is a small merged-/usr root (bash, coreutils and their libraries; \`packages/daemon/test/volumes/mini-root.sh\`) owned by root as a distribution's. Target: a snapshot root within ${TARGET}× the default.`,
    "",
    "| sandbox | create → first `true` | ratio to default | target | met |",
    "|---|---|---|---|---|",
    `| default (host /usr; floor) | ${ms(st.default)} | 1.00× |  |  |`,
    `| booted from a snapshot (idmapped view + overlay on its own storage) | ${ms(st.snapshot)} | ${ratio("snapshot").toFixed(2)}× | ≤ ${TARGET}× | ${ratio("snapshot") <= TARGET ? "yes" : "**no**"} |`,
    `| booted from a volume (idmapped view, read-write) | ${ms(st.volume)} | ${ratio("volume").toFixed(2)}× |  |  |`,
    `| default, from the warm pool (warmPool 1; floor of the next row, same daemon) | ${ms(pooled.default)} | 1.00× |  |  |`,
    `| booted from a snapshot, from its image's warm pool (imageWarmPool 1) | ${ms(pooled.snapshot)} | ${pooledRatio.toFixed(2)}× |  |  |`,
    "",
    "The pooled rows come from a second daemon (warmPool 1, imageWarmPool 1): each create is followed by a kill and a wait until its pool has booted the next sandbox, the two kinds interleaved. What a root adds to a launch: a block of host uids, a user namespace made by `sbx-launch` (fork, unshare, write the maps) and, in the same exec, the image's view idmapped by that namespace (for a snapshot with an overlay on it), the overlay's two layer directories, the mount-point check (a few lstat calls), and the unmounts after. The snapshot itself stays mounted while any sandbox uses it.",
    "<!-- images:end -->",
  ].join("\n");
  const current = readFileSync(RESULTS, "utf8");
  const marked = /<!-- images:start[\s\S]*?<!-- images:end -->/;
  writeFileSync(RESULTS, marked.test(current) ? current.replace(marked, section) : `${current.trimEnd()}\n\n${section}\n`);
  console.log(section);
} finally {
  await d.stop().catch(() => {});
}
