import { callContext } from "./context.js";

/** A line logger; the daemon owns one and hands it down. */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export type LogFormat = "text" | "json";

/**
 * A logger writing one line per message: `<time> <level> <message>` as text, or a JSON object
 * per line (`--log-format json`) with `time`, `level`, `msg`, the `sandbox` the message is about
 * and, inside a client's call, its `request` id and `tenant`.
 */
export function createLogger(write: (line: string) => void = (l) => process.stderr.write(l), quiet = false, format: LogFormat = "text"): Logger {
  const line = (level: string, msg: string) => {
    const ctx = callContext.getStore();
    const time = new Date().toISOString();
    if (format === "json") {
      const sandbox = /\bsbx_[A-Za-z0-9]{8,}/.exec(msg)?.[0];
      write(`${JSON.stringify({ time, level, msg, ...(sandbox ? { sandbox } : {}), ...(ctx ? { request: ctx.request, tenant: ctx.tenant } : {}) })}\n`);
    } else write(`${time} ${level} ${msg}\n`);
  };
  return {
    info: (m) => quiet || line("info", m),
    warn: (m) => line("warn", m),
    error: (m) => line("error", m),
  };
}

/**
 * At most `limit` lines per `windowMs` for one noisy source. `take()` says whether this line
 * may be written, and how many were held back since the last one that was (to be said once).
 *
 * @example
 * const budget = new LogBudget(100, 60_000);
 * const { allowed, suppressed } = budget.take();
 */
export class LogBudget {
  private windowStart = -Infinity;
  private used = 0;
  private held = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  take(): { allowed: boolean; suppressed: number } {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      this.windowStart = t;
      this.used = 0;
    }
    if (this.used >= this.limit) {
      this.held++;
      return { allowed: false, suppressed: 0 };
    }
    this.used++;
    const suppressed = this.held;
    this.held = 0;
    return { allowed: true, suppressed };
  }
}
