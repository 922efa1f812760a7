import { describe, expect, it } from "vitest";
import { mountPathProblem, overlapping } from "../../src/volumes/paths.js";
import { viewPathProblem } from "../../src/volumes/store.js";

describe("volume mount paths", () => {
  it("accepts plain absolute paths outside the system's, including below home and /tmp", () => {
    for (const p of ["/data", "/mnt/cache", "/home/user/project", "/tmp/work", "/workspace/a.b_c-d", "/var/lib/db", "/usrx", "/opt/x"]) {
      expect(mountPathProblem(p), p).toBeNull();
    }
  });

  it("refuses relative, unnormalized and odd-character paths", () => {
    expect(mountPathProblem("data")).toMatch(/not absolute/);
    expect(mountPathProblem("/data/../etc")).toMatch(/no "\." or "\.\." segments/);
    expect(mountPathProblem("/data/./x")).toMatch(/no "\." or "\.\." segments/);
    expect(mountPathProblem("/data//x")).toMatch(/no "\/\/" or trailing "\/"/);
    expect(mountPathProblem("/data/")).toMatch(/no "\/\/" or trailing "\/"/);
    expect(mountPathProblem("/da ta")).toMatch(/characters other than/);
    expect(mountPathProblem("/da\nta")).toMatch(/characters other than/);
    expect(mountPathProblem("/" + "a/".repeat(20) + "b")).toMatch(/levels deep/);
    expect(mountPathProblem("/" + "a".repeat(300))).toMatch(/longer than 256/);
  });

  it("refuses the system paths the isolation is built from, and below them", () => {
    for (const p of ["/usr", "/usr/lib", "/bin", "/lib64/x", "/etc", "/etc/passwd", "/proc", "/proc/1", "/dev", "/dev/shm", "/sys", "/.sbx", "/.sbx/run", "/run", "/var/tmp", "/var/tmp/x", "/root"]) {
      expect(mountPathProblem(p), p).toMatch(/which the sandbox's isolation is built from/);
    }
  });

  it("refuses covering the sandbox's own storage as a whole", () => {
    for (const p of ["/", "/home", "/home/user", "/home/sandbox", "/tmp", "/var"]) expect(mountPathProblem(p), p).toMatch(/would hide the sandbox's own files/);
  });

  it("finds paths inside one another, not mere prefixes", () => {
    expect(overlapping(["/a", "/a-b", "/a/c"])).toEqual(["/a", "/a/c"]);
    expect(overlapping(["/a", "/ab", "/a-b"])).toBeNull();
  });
});

describe("a root's view paths (sbx-launch --root-view, overlay options split at ',' and ':')", () => {
  const view = (target: string) => ({ source: "/state/volumes/mnt/v1", target, readOnly: true, overlay: { upper: "/state/s1/root/upper", work: "/state/s1/root/work", merged: "/state/s1-root" } });
  it("takes plain paths", () => expect(viewPathProblem(view("/state/s1-lower"))).toBeNull());
  it("refuses a path holding ',' or ':', naming it", () => {
    expect(viewPathProblem(view("/st,ate/s1-lower"))).toMatch(/"\/st,ate\/s1-lower" holds ',' or ':'/);
    expect(viewPathProblem({ ...view("/state/s1-lower"), overlay: { upper: "/a:b", work: "/w", merged: "/m" } })).toMatch(/"\/a:b"/);
  });
});
