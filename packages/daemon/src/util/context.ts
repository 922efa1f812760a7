import { AsyncLocalStorage } from "node:async_hooks";

/** What the daemon is doing on whose behalf: set around each client call, read by the logger. */
export interface CallContext {
  /** `c<connection>-<JSON-RPC id>`: ties a client's call to every daemon log line it caused. */
  request: string;
  /** The tenant's name (from the config's tenants, or "default" for the primary token). */
  tenant: string;
}

export const callContext = new AsyncLocalStorage<CallContext>();
