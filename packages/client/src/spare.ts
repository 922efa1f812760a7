import type { Socket } from "node:net";
import WebSocket from "ws";

/**
 * Connections opened ahead for `Sandbox.create`, one per daemon URL and token: a create that
 * finds one costs its call alone, not a TCP connect and a WebSocket upgrade first (1.5–1.9 ms of
 * a 3.2 ms create from a warm pool on a 2-core VM, most of it waking idle CPUs on both sides).
 *
 * Only a process that makes a second create to the same place within SPARE_MS of its last keeps
 * one (a script that makes one sandbox never opens a connection it does not use). A spare is
 * closed after SPARE_MS unused, never keeps the process alive, and is handed out only while
 * open; one that closed meanwhile is dropped and the create connects as it would have. Neither a
 * daemon nor a gateway sends anything on a `bind=new` connection before its create, and a
 * gateway places the sandbox when the create arrives, so a spare's wait changes nothing of that.
 */
export const SPARE_MS = 10_000;
const SPARE_DELAY_MS = 50;

interface Spare {
  /** The connection being opened or open; null during the first SPARE_DELAY_MS. */
  ws: Promise<WebSocket | null> | null;
  /** Starts the open at the end of the delay, then closes the spare once unused for SPARE_MS. */
  timer: NodeJS.Timeout;
}

interface Place {
  /** When the last create here was made. */
  last: number;
  spare: Spare | null;
}

const places = new Map<string, Place>();

/** The socket under an open WebSocket (ws keeps it as `_socket`), to stop it holding the process open while it waits. */
const socketOf = (ws: WebSocket): Socket | undefined => (ws as unknown as { _socket?: Socket })._socket;

const ignore = (): void => {};

/**
 * The spare for `key` (a URL and a token), if one is open; it is the caller's from now on. One
 * still in its delay is dropped, not waited for (its timer does not keep the process alive).
 */
export async function takeSpare(key: string): Promise<WebSocket | null> {
  const place = places.get(key);
  const spare = place?.spare;
  if (!place || !spare) return null;
  place.spare = null;
  clearTimeout(spare.timer);
  const ws = await spare.ws;
  if (!ws) return null;
  if (ws.readyState !== WebSocket.OPEN) {
    ws.terminate();
    return null;
  }
  ws.off("error", ignore);
  socketOf(ws)?.ref();
  return ws;
}

/**
 * A create to `key` was made: from the second one on (within SPARE_MS), open the next create's
 * connection with `open` unless one is waiting already. A spare that fails to open is no spare.
 */
export function createMade(key: string, open: () => Promise<WebSocket>): void {
  const now = Date.now();
  for (const [k, p] of places) if (!p.spare && now - p.last >= SPARE_MS) places.delete(k);
  const place = places.get(key);
  if (!place) {
    places.set(key, { last: now, spare: null });
    return;
  }
  const again = now - place.last < SPARE_MS;
  place.last = now;
  if (!again || place.spare) return;
  // Opened SPARE_DELAY_MS later, not beside what a caller does first with a new sandbox: on 2
  // cores the connect made a first spawn right after create 0.8 ms slower.
  const spare: Spare = {
    ws: null,
    timer: setTimeout(() => {
      spare.ws = open().then(
        (ws) => {
          // until it is taken: errors end it quietly (a closed spare is not handed out)
          ws.on("error", ignore);
          socketOf(ws)?.unref();
          return ws;
        },
        () => null,
      );
      spare.timer = setTimeout(() => {
        if (place.spare !== spare) return;
        place.spare = null;
        void spare.ws!.then((ws) => ws?.close(1000, "unused"));
      }, SPARE_MS);
      spare.timer.unref();
    }, SPARE_DELAY_MS),
  };
  spare.timer.unref();
  place.spare = spare;
}
