/** One daemon the gateway may use, as discovery reports it. */
export interface DaemonEndpoint {
  /** ws:// URL of the daemon's API; also its key: a new URL is a new daemon. */
  url: string;
  /** A name for messages and logs (the pod or node), or the URL. */
  name: string;
  /**
   * False while the daemon should get no new sandboxes (Kubernetes: not ready, or terminating
   * while it drains); its running sandboxes are still reached through it.
   */
  ready: boolean;
}

/**
 * Where the gateway learns which daemons exist. Implementations push the whole current set
 * whenever it changes (the Kubernetes one from a watch, never a polling loop).
 */
export interface Discovery {
  /** Starts discovery; `onChange` receives the complete set after every change. */
  start(onChange: (endpoints: DaemonEndpoint[]) => void): void;
  /** Stops; no `onChange` after it returns. */
  close(): void;
  /** What this discovery watches, for messages ("3 static daemons", "EndpointSlices of sbx/sbx-daemon"). */
  describe(): string;
}

/** Checks a daemon URL from configuration: ws:// or wss://, a host, and nothing after the port. */
export function checkDaemonUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`daemon URL '${url.slice(0, 200)}' is not a URL (expected ws://HOST:PORT)`);
  }
  if ((u.protocol !== "ws:" && u.protocol !== "wss:") || !u.hostname || (u.pathname !== "/" && u.pathname !== "") || u.search || u.username) {
    throw new Error(`daemon URL '${url.slice(0, 200)}' must be ws://HOST:PORT or wss://HOST:PORT`);
  }
  return `${u.protocol}//${u.host}`;
}
