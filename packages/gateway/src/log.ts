/** A line logger; the gateway owns one and hands it down. */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** A logger writing timestamped lines (to stderr by default); `quiet` keeps only warnings and errors. */
export function createLogger(write: (line: string) => void = (l) => process.stderr.write(l), quiet = false): Logger {
  const line = (level: string, msg: string) => write(`${new Date().toISOString()} ${level} ${msg}\n`);
  return {
    info: (m) => quiet || line("info", m),
    warn: (m) => line("warn", m),
    error: (m) => line("error", m),
  };
}
