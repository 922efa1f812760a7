import { describe, expect, it } from "vitest";
import { METHODS, SandboxId, type MethodName } from "@sbx/protocol";
import { hostPrefixOf } from "../src/fleet/ids.js";
import { ROUTES } from "../src/session/routes.js";

describe("sandbox, volume and snapshot ids name their host", () => {
  it.each([
    ["sbx_n1_x6Gm2K0cZ4bQ9pLrT8vW1yEd", "n1"],
    ["sbx_abcdefghij_x6Gm2K0cZ4bQ9pLrT8vW1yEd", "abcdefghij"],
    ["sbx_x6Gm2K0cZ4bQ9pLrT8vW1yEd", null], // a daemon without a prefix
    ["sbx_N1_x6Gm2K0cZ4bQ9pLrT8vW1yEd", null], // prefixes are lower case
    ["sbx_n1_short", null],
    ["sbx_n1_x6Gm2K0cZ4bQ9pLrT8vW1yEd/../x", null],
    ["sbx__x6Gm2K0cZ4bQ9pLrT8vW1yEd", null],
    ["sbx_aaaaaaaaaaaaaaaaa_x6Gm2K0cZ4bQ9pLrT8vW1yEd", null], // 17 characters
    ["xyz_n1_x6Gm2K0cZ4bQ9pLrT8vW1yEd", null],
    ["vol_n1_x6Gm2K0cZ4bQ9pLrT8vW1yEd", "n1"],
    ["snap_n1_x6Gm2K0cZ4bQ9pLrT8vW1yEd", "n1"],
    ["vol_x6Gm2K0cZ4bQ9pLrT8vW1yEd", null], // a daemon without a prefix
    ["my-volume", null], // a slug: no host in it
  ])("%s → %s", (id, prefix) => {
    expect(hostPrefixOf(id)).toBe(prefix);
  });
});

describe("every method has a route", () => {
  it("routes by a param that is a sandbox id in the protocol", () => {
    for (const [method, route] of Object.entries(ROUTES) as Array<[MethodName, (typeof ROUTES)[MethodName]]>) {
      if (route.kind !== "sandbox") continue;
      const props = (METHODS[method].params as { properties: Record<string, unknown> }).properties;
      expect(props[route.field], `${method}.${route.field}`).toBe(SandboxId);
    }
  });

  it("covers exactly the protocol's methods", () => {
    expect(Object.keys(ROUTES).sort()).toEqual(Object.keys(METHODS).sort());
    expect(ROUTES["sandbox.create"].kind).toBe("create");
    expect(ROUTES["sandbox.list"].kind).toBe("list");
    expect(ROUTES["daemon.drain"].kind).toBe("host");
    // Volumes stay on their daemon's host: found there by id or slug; a sandbox's snapshot goes where the sandbox is.
    expect(ROUTES["volume.create"]).toEqual({ kind: "volume", how: "new" });
    expect(ROUTES["image.build"]).toEqual({ kind: "volume", how: "new" });
    expect(ROUTES["volume.get"]).toEqual({ kind: "volume", how: "byRef" });
    expect(ROUTES["snapshot.delete"]).toEqual({ kind: "volume", how: "byRef" });
    expect(ROUTES["snapshot.list"]).toEqual({ kind: "volume", how: "list" });
    expect(ROUTES["sandbox.snapshot"]).toEqual({ kind: "sandbox", field: "id" });
    // Every volume method takes what its route reads: an idOrSlug, or a new slug.
    for (const [method, route] of Object.entries(ROUTES) as Array<[MethodName, (typeof ROUTES)[MethodName]]>) {
      if (route.kind !== "volume" || route.how === "list") continue;
      const props = (METHODS[method].params as { properties: Record<string, unknown> }).properties;
      expect(Object.keys(props), method).toContain(route.how === "byRef" ? "idOrSlug" : "slug");
    }
  });
});
