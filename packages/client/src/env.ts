import type { Connection } from "./connection.js";

/** The sandbox's default environment: what every later spawn starts from. */
export class SandboxEnv {
  /** @internal */
  constructor(private readonly conn: Connection, private readonly sandbox: string) {}

  async get(name: string): Promise<string | undefined> {
    return (await this.conn.request("env.get", { sandbox: this.sandbox, name })) ?? undefined;
  }

  async set(name: string, value: string): Promise<void> {
    await this.conn.request("env.set", { sandbox: this.sandbox, name, value });
  }

  async delete(name: string): Promise<void> {
    await this.conn.request("env.delete", { sandbox: this.sandbox, name });
  }

  async toObject(): Promise<Record<string, string>> {
    return this.conn.request("env.toObject", { sandbox: this.sandbox });
  }
}
