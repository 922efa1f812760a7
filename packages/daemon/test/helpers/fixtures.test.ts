import { describe, expect, it } from "vitest";
import { isThere, standIn } from "./fixtures.js";

/** A class with a private field, a getter and methods that use `this`, as Sandbox has. */
class Box {
  #secret: string;
  label = "box";
  constructor(secret: string) {
    this.#secret = secret;
  }
  get size(): number {
    return this.#secret.length;
  }
  reveal(): string {
    return this.#secret;
  }
  tag(strings: TemplateStringsArray, ...values: unknown[]): string {
    return `${this.label}:${strings.join("?")}:${values.join(",")}`;
  }
}

describe("standIn", () => {
  it("refuses every use until its object is there, naming what is missing", () => {
    let box: Box | undefined;
    const s = standIn("sandbox", () => box);
    expect(isThere(s)).toBe(false);
    expect(() => s.label).toThrow("the file's sandbox is not there (yet)");
    expect(() => s.reveal()).toThrow("the file's sandbox is not there (yet)");
    box = new Box("abc");
    expect(isThere(s)).toBe(true);
  });

  it("forwards reads, writes, methods (private fields, tagged templates), getters and instanceof to the current object", () => {
    let box = new Box("first");
    const s = standIn("sandbox", () => box);
    expect(s.reveal()).toBe("first");
    expect(s.size).toBe(5);
    expect(s.tag`a${1}b`).toBe("box:a?b:1");
    expect(s).toBeInstanceOf(Box);
    expect("label" in s).toBe(true);
    s.label = "renamed";
    expect(box.label).toBe("renamed");
    expect({ ...s }).toEqual({ label: "renamed" });
    // Replaced (as replaceDead does): every later use reaches the new one.
    box = new Box("second!");
    expect(s.reveal()).toBe("second!");
    expect(s.size).toBe(7);
    expect(s.label).toBe("box");
  });

  it("isThere refuses an object that is not a stand-in", () => {
    expect(() => isThere({})).toThrow("isThere takes a stand-in");
  });
});
