import { describe, expect, it } from "vitest";
import { mountPoints, mountSource, unescapeMountPath } from "../../src/util/mountinfo.js";

const INFO = [
  "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
  "91 22 7:3 / /var/lib/sbx/storage/a rw,nosuid,nodev,noatime shared:50 - ext4 /dev/loop3 rw",
  "92 22 7:4 / /var/lib/sbx/with\\040space rw shared:51 - ext4 /dev/loop4 rw",
  "93 91 0:40 / /var/lib/sbx/storage/a rw shared:52 - tmpfs tmpfs rw",
  "",
].join("\n");

describe("mountinfo", () => {
  it("finds the source mounted at a path, escapes undone; the last mount at a path is the one seen there", () => {
    expect(mountSource("/", INFO)).toBe("/dev/vda");
    expect(mountSource("/var/lib/sbx/with space", INFO)).toBe("/dev/loop4");
    expect(mountSource("/var/lib/sbx/storage/a", INFO)).toBe("tmpfs");
  });

  it("says null for a path nothing is mounted at, or one only a prefix of a mount point", () => {
    expect(mountSource("/var/lib/sbx", INFO)).toBeNull();
    expect(mountSource("/var/lib/sbx/storage", INFO)).toBeNull();
    expect(mountSource("/var/lib/sbx/with\\040space", INFO)).toBeNull();
  });

  it("lists every mount point in the kernel's order, escapes undone, blank lines left out", () => {
    expect(mountPoints(INFO)).toEqual(["/", "/var/lib/sbx/storage/a", "/var/lib/sbx/with space", "/var/lib/sbx/storage/a"]);
  });

  it("undoes the kernel's octal escapes (space, tab, newline, backslash)", () => {
    expect(unescapeMountPath("a\\040b\\011c\\012d\\134e")).toBe("a b\tc\nd\\e");
  });
});
