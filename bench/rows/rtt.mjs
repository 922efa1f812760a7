// Row 2: spawn("true") round trip in a live sandbox, beside a local child_process.spawn.
import { CFG, log } from "../lib/env.mjs";
import { stats, ms } from "../lib/stats.mjs";
import { localTrue } from "../lib/floors.mjs";
import { sdkTrue } from "../lib/sdk.mjs";

/** Interleaved: piped vs a piped local spawn, stdio "null" vs a local spawn with stdio ignored. */
export async function measureRtt(sb) {
  for (let i = 0; i < 30; i++) await sdkTrue(sb, "piped"), await localTrue("pipe");
  const piped = [], nul = [], localPipe = [], localIgnore = [];
  for (let i = 0; i < CFG.rttN; i++) {
    piped.push(await sdkTrue(sb, "piped"));
    localPipe.push(await localTrue("pipe"));
    nul.push(await sdkTrue(sb, "null"));
    localIgnore.push(await localTrue("ignore"));
  }
  const rtt = { piped: stats(piped), nul: stats(nul), localPipe: stats(localPipe), localIgnore: stats(localIgnore) };
  log(`   sdk ${ms(rtt.piped)}; local ${ms(rtt.localPipe)}`);
  return rtt;
}
