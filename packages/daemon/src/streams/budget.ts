/**
 * What one sandbox's output may hold in the daemon at once. Every stream that flows from the
 * supervisor to the daemon (a process's stdout/stderr, a file being read, a tunnel's replies)
 * has a window: the bytes the supervisor may send before the daemon credits them back, which is
 * what the daemon may end up holding for it when nobody reads. A stream opens with a small
 * window (CHANNEL_INITIAL_WINDOW, which the supervisor assumes on its own), and the daemon widens
 * it toward STREAM_WINDOW only while it is being read and only out of this budget. So the sum of
 * all the windows, and with it the daemon's memory for bytes the sandbox wrote that have not been
 * passed on, never exceeds the budget: when it is spent, writers inside wait (their pipes fill),
 * nothing is buffered beyond it and nothing is dropped. A new stream whose initial window no
 * longer fits is refused with an error naming the config key, not opened over the budget (after
 * the unread output of ended processes nobody is attached to has made what room it can, oldest
 * first, as their kept tails do).
 * Widening never takes the last quarter of the budget: a few streams read at full speed leave
 * room for new ones (64 of them at the default).
 */
import { STREAM_WINDOW } from "@sbx/protocol";
import { CHANNEL_INITIAL_WINDOW } from "../channel/framing.js";
import { DaemonError } from "../util/errors.js";

/** Config `streamBytesPerSandbox`: room for 6 streams at the full window (8 MiB) and 64 more at the initial one, or 256 at the initial one. */
export const DEFAULT_STREAM_BUDGET = 64 << 20;

export class StreamBudget {
  /** Bytes granted to the supervisor and not yet returned: windows of open streams, plus output an ended stream still holds unread. */
  used = 0;
  /** The largest `used` has been (tests and diagnostics). */
  peak = 0;

  /** What widened windows may bring `used` up to: the rest is kept for new streams. */
  readonly widenable: number;

  constructor(readonly limit = DEFAULT_STREAM_BUDGET) {
    this.widenable = limit - Math.floor(limit / 4);
    if (limit < CHANNEL_INITIAL_WINDOW) throw new Error(`a sandbox's stream budget must be at least ${CHANNEL_INITIAL_WINDOW} bytes (one stream's initial window)`);
  }

  /**
   * Asked for `bytes` of room when a new stream does not fit: lets go of output nobody can be
   * waiting on (ended processes no client is attached to), never a running writer's.
   */
  reclaim: ((bytes: number) => void) | null = null;

  /** Throws unless `streams` more streams fit now. */
  check(streams: number): void {
    const need = streams * CHANNEL_INITIAL_WINDOW;
    if (this.used + need > this.limit) this.reclaim?.(this.used + need - this.limit);
    if (this.used + need <= this.limit) return;
    throw new DaemonError(
      "ResourceLimit",
      `this sandbox's streams already hold ${this.used} of the ${this.limit} bytes of unread output the daemon keeps for it (config streamBytesPerSandbox); another stream needs ${CHANNEL_INITIAL_WINDOW}: read or close some of its streams first`,
    );
  }

  /** The window of a new stream from the supervisor; throws (see check) when it does not fit. */
  open(): StreamGrant {
    this.check(1);
    this.take(CHANNEL_INITIAL_WINDOW);
    return new StreamGrant(this);
  }

  /** Counts `n` more bytes: only what open() and StreamGrant.widen checked, or bytes moved from a grant (hold). */
  take(n: number): void {
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
  }

  release(n: number): void {
    this.used -= n;
  }
}

/** One stream's window, reserved in its sandbox's budget until the stream closes. */
export class StreamGrant {
  size = CHANNEL_INITIAL_WINDOW;
  private closed = false;

  constructor(private readonly budget: StreamBudget) {}

  /**
   * Widens the window by up to `want` bytes (the stream is flowing: its reader just took that
   * many), as far as STREAM_WINDOW and the budget's room allow; returns by how much.
   */
  widen(want: number): number {
    if (this.closed) return 0;
    const n = Math.max(0, Math.min(want, STREAM_WINDOW - this.size, this.budget.widenable - this.budget.used));
    this.size += n;
    this.budget.take(n);
    return n;
  }

  /**
   * The stream is over: its window goes back to the budget, except `stillHeld` bytes of it the
   * owner keeps unread (an output tap nobody has read to the end), which it returns later with
   * budget.release.
   */
  close(stillHeld = 0): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.release(this.size - Math.min(stillHeld, this.size));
  }
}
