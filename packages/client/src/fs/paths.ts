import { fileURLToPath } from "node:url";
import type { PathLike } from "./types.js";

/** A path given as a string or a `file:` URL (any other URL is a TypeError, as in Deno). */
export function pathOf(path: PathLike): string {
  return typeof path === "string" ? path : fileURLToPath(path);
}

/** Rejects at once if `signal` already fired; otherwise runs `run`, calling `onAbort` if the signal fires meanwhile and then rejecting with its reason. */
export async function abortable<T>(signal: AbortSignal | undefined, run: () => Promise<T>, onAbort: () => void): Promise<T> {
  if (!signal) return run();
  signal.throwIfAborted();
  let aborted = false;
  const listener = () => {
    aborted = true;
    onAbort();
  };
  signal.addEventListener("abort", listener, { once: true });
  try {
    const result = await run();
    if (aborted) throw signal.reason;
    return result;
  } catch (err) {
    // What the call failed with is the abort's consequence; the caller asked for the abort's reason.
    if (aborted) throw signal.reason;
    throw err;
  } finally {
    signal.removeEventListener("abort", listener);
  }
}
