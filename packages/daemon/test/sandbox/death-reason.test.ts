import { describe, expect, it } from "vitest";
import { deathReason } from "../../src/sandbox/death.js";

describe("why a sandbox ended on its own (resilience item 6)", () => {
  it("says OOM, a signal, or an exit code, in words a user can act on", () => {
    const base = { code: null, signal: null, oom: false, memoryBytes: 256 << 20, stderr: "no output" };
    expect(deathReason({ ...base, code: 137, oom: true })).toBe("the kernel's OOM killer ended the sandbox's supervisor: the sandbox used all of its 256 MiB of memory; create it with more");
    expect(deathReason({ ...base, code: 137 })).toBe("the sandbox's supervisor was killed by SIGKILL (not by sbx); bwrap: no output");
    expect(deathReason({ ...base, signal: "SIGTERM" })).toBe("the sandbox's supervisor was killed by SIGTERM (not by sbx); bwrap: no output");
    expect(deathReason({ ...base, code: 1, stderr: "bwrap: Can't mount proc" })).toBe("the sandbox's supervisor exited with code 1; bwrap: bwrap: Can't mount proc");
  });
});
