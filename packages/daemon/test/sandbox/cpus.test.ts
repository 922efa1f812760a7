import { describe, expect, it } from "vitest";
import { CpuPlacer, formatCpuList, parseCpuList } from "../../src/sandbox/cpus.js";

describe("CPU lists", () => {
  it("parse and format the kernel's form", () => {
    expect(parseCpuList("0-3,8,10-11\n")).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(formatCpuList([0, 1, 2, 3, 8, 10, 11])).toBe("0-3,8,10-11");
    expect(formatCpuList([5])).toBe("5");
  });
});

describe("CpuPlacer", () => {
  it("gives a sandbox its quota rounded up in CPUs, the least loaded first, and all of them (null) when it asks for as many", () => {
    const p = new CpuPlacer([0, 1, 2, 3], () => new Map());
    const a = p.place(1)!;
    const b = p.place(0.5)!;
    const c = p.place(1.5)!;
    expect([a.length, b.length, c.length]).toEqual([1, 1, 2]);
    // Ties go either way, but no CPU is used twice while another is empty.
    expect(new Set([...a, ...b, ...c]).size).toBe(4);
    // b's CPU carries 0.5, c's two 0.75 each, a's a whole core.
    expect(p.place(0.25)).toEqual(b);
    expect(p.place(4)).toBeNull();
    expect(p.place(3.5)).toBeNull();
  });

  it("counts how busy the host keeps each CPU, beside the quota it placed there", () => {
    const p = new CpuPlacer([0, 1, 2], () => new Map([[0, 0.9], [1, 0.2], [2, 0.6]]));
    expect(p.place(1)).toEqual([1]); // 0.2 busy
    expect(p.place(1)).toEqual([2]); // 1 busy + 1.2 placed on CPU 1, 0.6 on CPU 2
    expect(p.place(1)).toEqual([0]);
  });

  it("frees what a sandbox held when it goes", () => {
    const p = new CpuPlacer([0, 1], () => new Map());
    const a = p.place(1)!;
    const b = p.place(1)!;
    expect(b).not.toEqual(a);
    p.release(a, 1);
    expect(p.place(1)).toEqual(a);
  });
});
