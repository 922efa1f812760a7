/**
 * image.build through a gateway: placed on a host like a new volume, its progress lines reach
 * the client as the daemon sends them, and its answer too. Two daemons that may reach Debian's
 * mirror (egress.allowedRanges), one gateway. Skipped, saying why, where no image can be built.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, InvalidOptionError } from "@sbx/client";
import { whyNoImageBuild } from "../../daemon/test/helpers/images.js";
import { reachableRanges } from "../../daemon/test/helpers/ranges.js";
import { startFleet, type TestFleet } from "./helpers/fleet.js";

const cannotBuild = await whyNoImageBuild();
let fleet: TestFleet;

beforeAll(async () => {
  if (cannotBuild) return;
  fleet = await startFleet({ daemons: 2, gateways: 1, daemonConfig: { imageBuilds: 1, egress: { allowedRanges: await reachableRanges(["deb.debian.org"]) } } });
});
afterAll(async () => {
  await fleet?.[Symbol.asyncDispose]();
});

describe("image.build through the gateway", () => {
  it("runs on a host of the fleet: its progress reaches the client, a failed build its error, and nothing is left on any host", async (ctx) => {
    if (cannotBuild) return ctx.skip(`no root image can be built on this host: ${cannotBuild}`);
    const client = new Client({ url: fleet.gateways[0]!.url, token: fleet.tenants[0]! });
    const lines: string[] = [];
    const err = await client.images.build({ slug: "fleet-image", packages: ["sbx-no-such-package"], capacity: "1GiB", onProgress: (l) => lines.push(l) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as Error).message).toBe("params.packages: Debian bookworm has no package 'sbx-no-such-package'");
    expect(lines.length).toBeGreaterThan(0);
    expect(await client.snapshots.get("fleet-image")).toBeNull();
    expect((await client.snapshots.list()).items).toEqual([]);
  }, 180_000);
});
