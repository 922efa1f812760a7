// Row 2m: does serving /metrics cost exec round trips? spawn("true") back to back in one live
// sandbox for a second at a time, alternating: a second while a scraper fetches the daemon's
// /metrics every 250 ms (60 times as often as Prometheus's default 15 s), and a second while
// nothing scrapes. Medians of all round trips of each kind, and what a scrape itself took.
import { CFG, log, sleep } from "../lib/env.mjs";
import { stats, ms } from "../lib/stats.mjs";
import { sdkTrue } from "../lib/sdk.mjs";

const SCRAPE_EVERY_MS = 250;
const BLOCK_MS = 1000;

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

/** Round trips for BLOCK_MS, appended to `into`. */
async function block(sb, into) {
  const end = performance.now() + BLOCK_MS;
  while (performance.now() < end) into.push(await sdkTrue(sb, "piped"));
}

export async function measureMetricsScrape(sb, metricsUrl) {
  for (let i = 0; i < 20; i++) await sdkTrue(sb, "piped");
  const scraped = [], quiet = [], scrapes = [];
  let bytes = 0;
  const rounds = CFG.rttN >= 300 ? 10 : 3;
  for (let round = 0; round < rounds; round++) {
    const s = scraper(metricsUrl);
    await block(sb, scraped);
    const r = await s.stop();
    scrapes.push(...r.took);
    bytes = r.bytes;
    await block(sb, quiet);
  }
  const out = { scraped: stats(scraped), quiet: stats(quiet), scrape: stats(scrapes), bytes };
  log(`   while scraped ${ms(out.scraped)}; not scraped ${ms(out.quiet)}; a scrape ${ms(out.scrape)}, ${bytes} B`);
  return out;
}
