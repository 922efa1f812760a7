import { describe, expect, it } from "vitest";
import { InvalidOptionError, Sandbox, type SandboxOptions } from "@sbx/client";
import { describeAccountingAndLeaks, rand, value, ALLOW, useSecretsSandbox } from "../../helpers/secrets.js";

/**
 * Secrets checked at create time: each bad spec is an InvalidOptionError naming the secret and
 * never its value, and starts no sandbox.
 * The setting (upstreams, the daemon, a sandbox holding the secrets) is in helpers/secrets.ts.
 */

const s = useSecretsSandbox();
const { daemon, sb } = s;

describe("create-time validation", () => {
  const cases: Array<[what: string, secrets: NonNullable<SandboxOptions["secrets"]>, env: Record<string, string> | undefined, names: RegExp]> = [
    ["a value under 8 characters", { SHORT_KEY: { hosts: ["api.openai.com"], value: value(rand(7)) } }, undefined, /secrets\.SHORT_KEY: value must be at least 8 characters/],
    ["a value with CR LF (header injection)", { CRLF_KEY: { hosts: ["api.openai.com"], value: value(`${rand(16)}\r\nX-Injected: ${rand(16)}`) } }, undefined, /secrets\.CRLF_KEY: value must be printable ASCII/],
    ["a value with a NUL", { NUL_KEY: { hosts: ["api.openai.com"], value: value(`${rand(16)}\u0000${rand(16)}`) } }, undefined, /secrets\.NUL_KEY: value must be printable ASCII/],
    ["a non-ASCII value", { UTF_KEY: { hosts: ["api.openai.com"], value: value(`pässwörd-${rand(24)}`) } }, undefined, /secrets\.UTF_KEY: value must be printable ASCII/],
    ["a value with a quote, which JSON would escape out of scrubbing's sight", { QUOTE_KEY: { hosts: ["api.openai.com"], value: value(`q"uo-${rand(24)}`) } }, undefined, /secrets\.QUOTE_KEY: value must not contain "\\""/],
    ["a value with a space", { SPACE_KEY: { hosts: ["api.openai.com"], value: value(`two ${rand(24)}`) } }, undefined, /secrets\.SPACE_KEY: value must be printable ASCII without spaces/],
    ["a value that holds a placeholder prefix", { NESTED_KEY: { hosts: ["api.openai.com"], value: value(`SBX_SECRET_${rand(32)}`) } }, undefined, /secrets\.NESTED_KEY: value must not contain SBX_SECRET_/],
    ["an IPv4 literal host", { IP_KEY: { hosts: ["api.openai.com", "127.0.0.1"], value: value(`sk-${rand(40)}`) } }, undefined, /secrets\.IP_KEY: hosts entry "127\.0\.0\.1" is an IP address/],
    ["an IPv6 literal host", { IP6_KEY: { hosts: ["[2001:db8::1]:443"], value: value(`sk-${rand(40)}`) } }, undefined, /secrets\.IP6_KEY: hosts entry "\[2001:db8::1\]:443" is an IP address/],
    ["a host allowNet would refuse", { BAD_HOST_KEY: { hosts: ["*.com"], value: value(`sk-${rand(40)}`) } }, undefined, /secrets\.BAD_HOST_KEY: hosts entry "\*\.com"/],
    ["an env variable of the same name", { OPENAI_KEY: { hosts: ["api.openai.com"], value: value(`sk-${rand(40)}`) } }, { OPENAI_KEY: "mine" }, /env\.OPENAI_KEY: is also the name of a secret/],
    ["a value over 64 KiB", { HUGE_KEY: { hosts: ["api.openai.com"], value: value(rand(65537)) } }, undefined, /secrets\.HUGE_KEY\.value: /],
  ];

  it.each(cases)("%s: InvalidOptionError (InvalidParams) naming the secret, never its value", async (_what, secrets, env, names) => {
    const err = await Sandbox.create({ ...daemon.opts, allowNet: ALLOW, secrets, ...(env ? { env } : {}) }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidOptionError);
    const e = err as InvalidOptionError;
    expect(e.rpcCode).toBe(-32602);
    expect(e.message).toMatch(names);
    const told = `${e.message}\n${JSON.stringify(e.data ?? null)}\n${e.stack ?? ""}`;
    for (const { value: v } of Object.values(secrets)) {
      expect(told.includes(v)).toBe(false);
      // nor any 8-character random piece of it
      for (let i = 0; i + 8 <= Math.min(v.length, 200); i++) {
        const piece = v.slice(i, i + 8);
        if (/^[0-9A-Za-z]{8}$/.test(piece) && piece !== "Injected") expect(told.includes(piece), piece).toBe(false);
      }
    }
  });

  it("none of them started a sandbox", async () => {
    expect((await Sandbox.list(daemon.opts)).map((s) => s.id)).toEqual([sb.id]);
  });
});

describeAccountingAndLeaks(s);
