import { describe, expect, it } from "vitest";
import { explainParams, parseBytes, parseDuration } from "../src/index.js";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

describe("sizes", () => {
  it.each([
    ["1G", GiB],
    ["1g", GiB],
    ["1Gi", GiB],
    ["1GiB", GiB],
    ["1gib", GiB],
    ["1GB", 1e9],
    ["1gb", 1e9],
    ["1Gb", 1e9],
    ["1.5GiB", 1.5 * GiB],
    ["1.5G", 1.5 * GiB],
    ["512m", 512 * MiB],
    ["512MB", 512e6],
    ["10k", 10240],
    ["10KB", 10000],
    ["2T", 2 * 2 ** 40],
    ["2tb", 2e12],
    ["1 GiB", GiB],
    ["4096", 4096],
    ["4096b", 4096],
    ["4096B", 4096],
    ["1.9B", 1],
  ])("%s is %d bytes, and the schema accepts it", (text, bytes) => {
    expect(parseBytes(text)).toBe(bytes);
    expect(explainParams("sandbox.create", { memory: text, disk: text })).toBeNull();
  });

  it.each(["", "G", "1GG", "1Gi B", "1x", "-1G", "1e9", "1,5G", "1.G", "1PB", "0x10", "1ib"])("%j is refused by both, naming the value", (text) => {
    expect(() => parseBytes(text)).toThrow(`'${text}' is not a size such as "512MiB"`);
    expect(explainParams("sandbox.create", { memory: text })).toMatch(/^params\.memory: must be a non-negative number of bytes or a size such as "512MiB", "1.5GiB" or "10GB"$/);
  });

  it("passes numbers through", () => {
    expect(parseBytes(123)).toBe(123);
  });
});

describe("durations", () => {
  it.each([
    ["500ms", 500],
    ["90s", 90_000],
    ["5m", 300_000],
    ["2h", 7_200_000],
    ["1h30m", 5_400_000],
    ["2m30s", 150_000],
    ["1h2m3s4ms", 3_723_004],
    ["1s500ms", 1500],
    ["0s", 0],
  ])("%s is %d ms, and the schema accepts it as a timeout and an extension", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
    expect(explainParams("sandbox.create", { timeout: text })).toBeNull();
    expect(explainParams("sandbox.extendTimeout", { id: "sbx_x", duration: text })).toBeNull();
  });

  it.each(["", "5", "m", "30m1h", "1h1h", "5 m", "5M", "1.5h", "1d", "1h30", "1234567890s", "ms"])("%j is refused by both, naming the value", (text) => {
    expect(() => parseDuration(text)).toThrow(`'${text}' is not a duration such as "30s"`);
    expect(explainParams("sandbox.create", { timeout: text })).toMatch(/^params\.timeout: must be "session" or a duration such as "30s", "5m", "2h" or "1h30m"$/);
  });
});
