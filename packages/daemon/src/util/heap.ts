import { setFlagsFromString } from "node:v8";

/**
 * How far V8 lets the old generation grow past what the last major GC left alive, in percent:
 * 300 is a growth factor of 4, the most V8 picks on its own for a heap that collects fast.
 *
 * Why the daemon sets it: every byte a stream carries arrives in a fresh Buffer (a socket read,
 * a frame), and V8 counts those buffers' memory toward its old-generation limit. The daemon's
 * heap is small (about 10 MB live), so the limit V8 computes from it leaves ~16 MB of room, and
 * a stream at a few hundred MB/s set off a major GC every ~16 MB: 68 per GiB of stdout, about a
 * third of the daemon's CPU (bench/cpu-split.mjs, perf). With a factor of 4 the room is ~50 MB,
 * and the buffers, which live no longer than a stream's window, mostly die in scavenges first.
 * The limit still follows the live heap: a daemon holding more state gets a proportionally
 * larger room, and an idle one is shrunk by V8's memory reducer as before.
 */
export const HEAP_GROWING_PERCENT = 300;

/** For the daemon's own process only (`sbx daemon`), not a process that embeds the daemon's code. */
export function tuneHeapForStreams(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
