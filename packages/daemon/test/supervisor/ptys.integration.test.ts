/**
 * Each sandbox has its own devpts with a cap (ptysPerSandbox): one sandbox holding all the
 * ptys it may have gets a clear ENOSPC for the next, and its neighbour can still open ptys.
 * (bwrap's own devpts shares the host's kernel.pty.max among every sandbox: one sandbox once
 * held 3,071 ptys and the next could open none.)
 */
import { describe, expect, it } from "vitest";
import { Sandbox } from "@sbx/client";
import { useDaemon } from "../helpers/fixtures.js";

const CAP = 4;
const daemon = useDaemon({ config: { ptysPerSandbox: CAP } });

/** Opens ptys until one fails, prints how many and why, then holds them until stdin closes. */
const HOARD = String.raw`
import errno, os, sys
held = []
try:
    while len(held) < 1000:
        held.append(os.openpty())
    print(len(held), "no error", flush=True)
except OSError as e:
    print(len(held), errno.errorcode[e.errno], flush=True)
sys.stdin.read()
`;

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return text.split("\n")[0]!;
}

describe("ptys", () => {
  it("a sandbox can open a pty, and it is a terminal of its own devpts", async () => {
    await using sb = await Sandbox.create(daemon.opts);
    const probe = "import os; m, s = os.openpty(); print(os.isatty(s), os.ttyname(s))";
    expect(await sb.sh`python3 -c ${probe}`.text()).toMatch(/^True \/dev\/pts\/0\n$/);
    const mount = await sb.sh`grep ' /dev/pts ' /proc/self/mountinfo | tail -1`.text();
    expect(mount).toMatch(new RegExp(`devpts devpts rw,.*max=${CAP}`));
    expect(await sb.sh`readlink /dev/ptmx`.text()).toBe("pts/ptmx\n");
  });

  it(`cannot hold more than ptysPerSandbox (${CAP}) at once; a neighbour still can open ptys meanwhile`, async () => {
    await using hog = await Sandbox.create(daemon.opts);
    await using neighbour = await Sandbox.create(daemon.opts);
    const hoarder = await hog.spawn("python3", { args: ["-c", HOARD], stdin: "piped" });
    expect(await firstLine(hoarder.stdout!)).toBe(`${CAP} ENOSPC`);
    // While the first holds its maximum: no more there, but the neighbour's devpts is its own.
    const more = await hog.sh`python3 -c 'import os; os.openpty()'`.noThrow();
    expect(more.status.code).not.toBe(0);
    expect(more.stderrText).toMatch(/OSError: \[Errno 28\] No space left on device/);
    expect(await neighbour.sh`python3 -c 'import os; os.openpty(); os.openpty(); print("opened")'`.text()).toBe("opened\n");
    // And what the hoarder lets go can be opened again.
    await hoarder.stdin!.getWriter().close();
    expect((await hoarder.status).code).toBe(0);
    expect(await hog.sh`python3 -c 'import os; os.openpty(); print("opened")'`.text()).toBe("opened\n");
  });
});
