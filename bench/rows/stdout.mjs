// Row 3: a process's stdout through the SDK, beside raw `ws` server→client.
import { CFG, MiB, log } from "../lib/env.mjs";
import { tput, mb, mbs } from "../lib/stats.mjs";
import { withRssPeak } from "../lib/proc.mjs";
import { sdkStdout } from "../lib/sdk.mjs";

export async function measureStdout(d, sb, peer) {
  await sdkStdout(sb, 64 * MiB);
  await peer.download(64 * MiB, 64 * 1024);
  const sdk = [], floor = [];
  let clientGrowth = 0, daemonGrowth = 0;
  for (let i = 0; i < CFG.reps; i++) {
    const r = await withRssPeak(d.proc.pid, () => sdkStdout(sb, CFG.stdoutBytes));
    sdk.push(r.result);
    clientGrowth = Math.max(clientGrowth, r.clientGrowth);
    daemonGrowth = Math.max(daemonGrowth, r.daemonGrowth);
    floor.push(await peer.download(CFG.stdoutBytes, 64 * 1024));
  }
  const out = { sdk: tput(sdk), floor: tput(floor), clientGrowth, daemonGrowth };
  log(`   sdk ${mbs(out.sdk)}; ws ${mbs(out.floor)}; client +${mb(clientGrowth)}, daemon +${mb(daemonGrowth)}`);
  return out;
}
