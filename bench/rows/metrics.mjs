// Row 2m: does serving /metrics cost exec round trips? spawn("true") in one live sandbox, in
// interleaved blocks: while a scraper fetches the daemon's /metrics back to back (10 ms apart, a
// Prometheus scraping 1,500× more often than its usual 15 s), and while nothing scrapes.
import { CFG, log, sleep } from "../lib/env.mjs";
import { stats, ms } from "../lib/stats.mjs";
import { sdkTrue } from "../lib/sdk.mjs";

const BLOCK = 50;
const SCRAPE_EVERY_MS = 10;

/** Fetches `url` every SCRAPE_EVERY_MS until stopped; returns each scrape's duration in ms and the bytes of the last. */
function scraper(url) {
  let running = true;
  const took = [];
  let bytes = 0;
  const done = (async () => {
    while (running) {
      const t0 = performance.now();
      const res = await fetch(url);
      if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
      bytes = (await res.arrayBuffer()).byteLength;
      took.push(performance.now() - t0);
      await sleep(SCRAPE_EVERY_MS);
    }
  })();
  return { async stop() { running = false; await done; return { took, bytes }; } };
}

export async function measureMetricsScrape(sb, metricsUrl) {
  for (let i = 0; i < 20; i++) await sdkTrue(sb, "piped");
  const scraped = [], quiet = [], scrapes = [];
  let bytes = 0;
  for (let round = 0; round < Math.max(2, CFG.rttN / BLOCK / 2); round++) {
    const s = scraper(metricsUrl);
    await sleep(SCRAPE_EVERY_MS); // the first scrape is under way
    for (let i = 0; i < BLOCK; i++) scraped.push(await sdkTrue(sb, "piped"));
    const r = await s.stop();
    scrapes.push(...r.took);
    bytes = r.bytes;
    for (let i = 0; i < BLOCK; i++) quiet.push(await sdkTrue(sb, "piped"));
  }
  const out = { scraped: stats(scraped), quiet: stats(quiet), scrape: stats(scrapes), bytes };
  log(`   while scraped ${ms(out.scraped)}; not scraped ${ms(out.quiet)}; a scrape ${ms(out.scrape)}, ${bytes} B`);
  return out;
}
