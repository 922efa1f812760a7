/**
 * The native supervisor's own tests (native/Makefile `test`): unit tests of its frame reader,
 * JSON reader and writer, tar reader and writer and path resolution, then time-bounded
 * fuzzing of the three parsers, all built with AddressSanitizer and UndefinedBehaviorSanitizer,
 * plus a sanitizer build of the whole supervisor.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SUPERVISOR_METHODS } from "@sbx/protocol";
import { expect, it } from "vitest";

const NATIVE = fileURLToPath(new URL("../../native", import.meta.url));

it("make test passes: unit tests and fuzzing under ASan and UBSan", () => {
  const r = spawnSync("make", ["-C", NATIVE, "--no-print-directory", "-j2", "test"], { encoding: "utf8", timeout: 120_000 });
  const out = `${r.stdout}\n${r.stderr}`;
  expect(r.status, out).toBe(0);
  expect(out).toMatch(/^unit: [1-9]\d* checks, 0 failed$/m);
  expect(out).toMatch(/^fuzz: frames [1-9]\d* rounds$/m);
  expect(out).toMatch(/^fuzz: json [1-9]\d* rounds$/m);
  expect(out).toMatch(/^fuzz: tar [1-9]\d* rounds$/m);
  expect(out).toMatch(/^fuzz: [1-9]\d* checks, 0 failed$/m);
}, 120_000);

it("implements exactly the protocol's supervisor methods (those marked runs: \"supervisor\"), and the daemon's ping", () => {
  const table = readFileSync(join(NATIVE, "call.c"), "utf8");
  const methods = /METHODS\[\] = \{([\s\S]*?)\n\};/.exec(table)![1]!;
  const implemented = [...methods.matchAll(/\{"([a-zA-Z.]+)", h_\w+\}/g)].map((m) => m[1]).sort();
  expect(implemented).toEqual([...SUPERVISOR_METHODS, "supervisor.ping"].sort());
});
