import * as crypto from "node:crypto";
import { describe, expect, it, vi } from "vitest";

/**
 * SECURITY.md: the daemon keeps only SHA-256 digests of its tokens and compares a presented
 * token's digest with each of them in constant time. timingSafeEqual is wrapped (not replaced)
 * so the test sees what it compares: always two 32-byte digests, never the tokens themselves,
 * so no comparison's length or time depends on how much of a token is right.
 */
vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:crypto")>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

const { Tokens } = await import("../../src/server/auth.js");
const compare = vi.mocked(crypto.timingSafeEqual);

const RIGHT = "right-token-0123456789abcdefghijklmnop";
const OTHER = "other-tenant-token-ABCDEFGHIJKLMNOPQRS";
const sha256 = (s: string) => crypto.createHash("sha256").update(s, "utf8").digest();

describe("Tokens.ownerOf compares fixed-length digests in constant time", () => {
  const tokens = new Tokens([
    { name: "a", token: RIGHT },
    { name: "b", token: OTHER },
  ]);
  const wrong = {
    empty: "",
    short: "x",
    prefix: RIGHT.slice(0, -1),
    "last character changed": RIGHT.slice(0, -1) + (RIGHT.endsWith("p") ? "q" : "p"),
    longer: RIGHT + "x",
    "much longer": RIGHT.repeat(100),
    "other case": RIGHT.toUpperCase(),
    "multi-byte": "ŧøķêñ-" + RIGHT,
  };

  it.each(Object.entries(wrong))("refuses a wrong token (%s) without throwing, comparing 32-byte digests only", (_, token) => {
    compare.mockClear();
    let owner: string | null = "not called";
    expect(() => (owner = tokens.ownerOf(token))).not.toThrow();
    expect(owner).toBeNull();
    // Every known digest is compared (no early exit on the first token), each call with two 32-byte digests.
    expect(compare.mock.calls.length).toBe(2);
    for (const [a, b] of compare.mock.calls) {
      expect(Buffer.isBuffer(a) && a.length).toBe(32);
      expect(Buffer.isBuffer(b) && b.length).toBe(32);
      expect(Buffer.from(a as Uint8Array).equals(sha256(token))).toBe(true);
    }
  });

  it("accepts each right token, still comparing it with every known digest", () => {
    compare.mockClear();
    expect(tokens.ownerOf(RIGHT)).toBe(sha256(RIGHT).toString("hex"));
    expect(compare).toHaveBeenCalledTimes(2);
    expect(tokens.ownerOf(OTHER)).toBe(sha256(OTHER).toString("hex"));
    expect(compare).toHaveBeenCalledTimes(4);
    expect(tokens.nameOf(tokens.ownerOf(OTHER)!)).toBe("b");
  });
});
