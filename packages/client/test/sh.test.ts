import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { buildScript, shellEscape } from "../src/sh.js";

const words = (script: string) => execFileSync("bash", ["-c", `${script}`], { encoding: "utf8" });
const tpl = (strings: TemplateStringsArray, ...values: unknown[]) => buildScript(strings, values);

describe("shell escaping", () => {
  const nasty = ["plain", "a b", "it's", '"dq"', "$(id)", "`id`", "$HOME", "a;b", "a|b", "*", "?", "~", "\\", "\n", "tab\there", "", "-e", "!", "{a,b}", "é✓", "x'\"'y"];

  it.each(nasty.map((s) => [s]))("%j survives bash as one word", (value) => {
    expect(words(`printf '%s' ${shellEscape(value)}`)).toBe(value);
  });

  it("expands arrays into several escaped words", () => {
    expect(words(tpl`printf '<%s>' ${["a b", "c", "$(x)"]}`)).toBe("<a b><c><$(x)>");
  });

  it("leaves the template's own text as shell syntax", () => {
    expect(words(tpl`echo ${"x"} | tr x y`)).toBe("y\n");
  });
});
