import { checkDaemonUrl, type DaemonEndpoint, type Discovery } from "./discovery.js";

/**
 * A fixed list of daemons (flags or config): for fleets without Kubernetes, and for tests. A
 * daemon that goes away stays listed and is retried; its sandboxes report "host lost" meanwhile.
 *
 * @example new StaticDiscovery(["ws://10.0.0.5:7070", "ws://10.0.0.6:7070"])
 */
export class StaticDiscovery implements Discovery {
  private readonly endpoints: DaemonEndpoint[];

  constructor(urls: string[]) {
    if (urls.length === 0) throw new Error("static discovery needs at least one daemon URL");
    const unique = [...new Set(urls.map(checkDaemonUrl))];
    this.endpoints = unique.map((url) => ({ url, name: url, ready: true }));
  }

  start(onChange: (endpoints: DaemonEndpoint[]) => void): void {
    onChange(this.endpoints.map((e) => ({ ...e })));
  }

  close(): void {}

  describe(): string {
    return `${this.endpoints.length} static daemon${this.endpoints.length === 1 ? "" : "s"}`;
  }
}
