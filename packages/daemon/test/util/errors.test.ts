import { JSONRPCErrorException } from "json-rpc-2.0";
import { describe, expect, it } from "vitest";
import { DaemonError, invalid } from "../../src/util/errors.js";

describe("DaemonError", () => {
  it("is an instance of itself and of json-rpc-2.0's exception, with its code", () => {
    // json-rpc-2.0's constructor resets the prototype: handlers that pass DaemonErrors on by
    // `instanceof` (and report anything else as internal) depend on this.
    const e = new DaemonError("InUse", "busy");
    expect(e).toBeInstanceOf(DaemonError);
    expect(e).toBeInstanceOf(JSONRPCErrorException);
    expect(e).toBeInstanceOf(Error);
    expect([e.codeName, e.code, e.message]).toEqual(["InUse", -32012, "busy"]);
    expect(invalid("slug", "bad")).toBeInstanceOf(DaemonError);
  });
});
