/** The gateway's counts of bytes handed to a socket and not yet written out (per socket and gateway-wide). */
export { ByteBudget } from "@sbx/protocol";

/** The marks per socket and for the whole gateway (the daemon's per-connection and daemon-wide marks). */
export const MARKS = {
  socket: { high: 8 << 20, low: 2 << 20 },
  gateway: { high: 256 << 20, low: 128 << 20 },
} as const;
