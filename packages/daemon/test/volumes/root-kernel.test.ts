import { describe, expect, it } from "vitest";
import { rootKernelProblem } from "../../src/volumes/root.js";

/** An old kernel gets Unsupported, naming what is missing, before anything is mounted (not a failed boot). */
describe("which kernels boot a sandbox from an image", () => {
  it("a volume root needs 5.12 (idmapped ext4), a snapshot root 5.19 (overlay over idmapped)", () => {
    expect(rootKernelProblem("volume", "5.12.0")).toBeNull();
    expect(rootKernelProblem("snapshot", "5.19.0-1-amd64")).toBeNull();
    expect(rootKernelProblem("snapshot", "6.1.0-28-cloud-amd64")).toBeNull();
    expect(rootKernelProblem("volume", "5.11.22")).toBe("booting from a volume needs an idmapped mount of the volume, which Linux 5.12 and later have; this host runs 5.11.22");
    expect(rootKernelProblem("snapshot", "5.15.0-122-generic")).toBe(
      "booting from a snapshot needs an overlay over an idmapped mount of the snapshot, which Linux 5.19 and later have; this host runs 5.15.0-122-generic",
    );
    expect(rootKernelProblem("snapshot", "4.19.0")).toMatch(/needs .* 5\.19/);
  });

  it("lets a kernel whose release it cannot read try (the boot then says what failed)", () => {
    expect(rootKernelProblem("snapshot", "custom")).toBeNull();
  });
});
