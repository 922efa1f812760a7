/**
 * A process that keeps creating sandboxes finds the next create's connection opened ahead
 * (spare.ts): the create skips the TCP connect and the upgrade. Counted here by a TCP relay in
 * front of the test daemon that counts the connections it accepts.
 */
import { execFile } from "node:child_process";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "../src/index.js";
import { useDaemon } from "../../daemon/test/helpers/fixtures.js";

const daemon = useDaemon();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A relay to the daemon: how many connections it accepted, and a way to cut them all. */
let relay: { url: string; accepted: number; cut(): void; server: Server };
beforeAll(async () => {
  const sockets = new Set<Socket>();
  const port = Number(new URL(daemon.url).port);
  const server = createServer((client) => {
    relay.accepted++;
    const upstream = connect(port, "127.0.0.1");
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(a);
      a.pipe(b);
      a.on("error", () => b.destroy());
      a.on("close", () => (sockets.delete(a), b.destroy()));
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  relay = { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, accepted: 0, server, cut: () => sockets.forEach((s) => s.destroy()) };
});
afterAll(() => new Promise<void>((r) => (relay.cut(), relay.server.close(() => r()))));

describe("the next create's connection opened ahead", () => {
  it("only from a process's second create on, and taken by the next create", async () => {
    const opts = { url: relay.url, token: daemon.token };
    const made: Sandbox[] = [];
    try {
      made.push(await Sandbox.create(opts));
      await sleep(200);
      expect(relay.accepted).toBe(1); // one create: nothing opened ahead
      made.push(await Sandbox.create(opts));
      expect(relay.accepted).toBe(2);
      await sleep(200);
      expect(relay.accepted).toBe(3); // the spare
      made.push(await Sandbox.create(opts));
      expect(relay.accepted).toBe(3); // the third create connected through none
      expect((await made[2]!.sh`echo third`.text()).trim()).toBe("third");
      await sleep(200);
      expect(relay.accepted).toBe(4); // and the next one is ready
    } finally {
      await Promise.all(made.map((sb) => sb.kill()));
    }
  });

  it("one its daemon closed is not handed out: the create connects anew", async () => {
    const opts = { url: relay.url, token: daemon.token };
    const made = [await Sandbox.create(opts), await Sandbox.create(opts)];
    try {
      await sleep(200);
      const before = relay.accepted;
      relay.cut(); // the spare's connection (and the two sandboxes' own) end
      await sleep(100);
      made.push(await Sandbox.create(opts));
      expect(relay.accepted).toBe(before + 1);
      expect((await made[2]!.sh`echo fresh`.text()).trim()).toBe("fresh");
    } finally {
      for (const sb of made) await Sandbox.connect(sb.id, { url: daemon.url, token: daemon.token }).then((h) => h.kill(), () => {});
    }
  });
});

describe("a spare never keeps the process alive", () => {
  const run = promisify(execFile);
  const clientEntry = fileURLToPath(new URL("../dist/index.js", import.meta.url));
  const script = async (body: string) => {
    const source = `import { Sandbox } from ${JSON.stringify(clientEntry)};\n${body}`;
    const started = Date.now();
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", source], { env: { ...process.env, SBX_URL: daemon.url, SBX_TOKEN: daemon.token }, timeout: 8_000, killSignal: "SIGKILL" });
    return { stdout, elapsed: Date.now() - started };
  };

  it("open and waiting (it would be closed only 10 s later)", async () => {
    const { stdout, elapsed } = await script(`for (let i = 0; i < 2; i++) await (await Sandbox.create()).kill();
      await new Promise((r) => setTimeout(r, 300));
      console.log("done");`);
    expect(stdout.trim()).toBe("done");
    expect(elapsed).toBeLessThan(5_000);
  });

  it("or still in its delay when a create comes (that create connects itself, and does not wait on it)", async () => {
    const { stdout } = await script(`for (let i = 0; i < 3; i++) await (await Sandbox.create()).kill();
      console.log("done");`);
    expect(stdout.trim()).toBe("done");
  });
});
