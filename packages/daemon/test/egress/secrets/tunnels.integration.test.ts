import { describe, expect, it } from "vitest";
import { ok } from "../../helpers/bash.js";
import { describeAccountingAndLeaks, OPENAI, useSecretsSandbox } from "../../helpers/secrets.js";

/**
 * Secrets and tunnels of other protocols: bytes that are not HTTP pass as they are, and a
 * placeholder in them ends the tunnel before it leaves.
 * The setting (upstreams, the daemon, a sandbox holding the secrets) is in helpers/secrets.ts.
 */

const s = useSecretsSandbox();
const { sb, P, recorded, counts, run, raw } = s;

describe("tunnels of other protocols, in a sandbox that holds secrets", () => {
  /**
   * Opens a CONNECT tunnel from inside to tcp.example.test:PORT, sends DATA (with $VAR expanded
   * from the environment, if any), half-closes, and prints what comes back until the far end
   * closes ("closed" if the connection is reset).
   */
  const TUNNEL_PY = String.raw`
import os, socket, sys
port, data = sys.argv[1], os.path.expandvars(sys.argv[2]).encode()
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(("CONNECT tcp.example.test:%s HTTP/1.1\r\nHost: tcp.example.test:%s\r\n\r\n" % (port, port)).encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += s.recv(1)
out = b""
try:
    if data:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    while True:
        c = s.recv(65536)
        if not c:
            break
        out += c
except OSError:
    print("closed", end="")
print(out.decode(), end="")
`;
  const tunnel = async (port: number, send: string) => {
    await sb.fs.writeTextFile("/tmp/tunnel.py", TUNNEL_PY);
    return run(`python3 /tmp/tunnel.py ${port} '${send}'`);
  };

  it("a host that cannot be reached is a 502 naming it, as in a sandbox without secrets", async () => {
    const r = await run(`curl -s -p -o /dev/null -w '%{http_connect}' http://tcp.example.test:2999/`);
    expect(r.out).toBe("502");
    const refused = await raw([{ parts: ["CONNECT tcp.example.test:2999 HTTP/1.1\r\nHost: tcp.example.test:2999\r\n\r\n"] }]);
    expect(refused[0]!.headers["x-sbx-error"]).toMatch(/^cannot reach tcp\.example\.test:2999: connect ECONNREFUSED/);
  });

  it("a server that speaks first is heard without the client sending anything", async () => {
    expect(ok(await tunnel(2525, ""), "banner")).toBe("220 tcp.example.test ready\r\n");
  });

  it("a non-HTTP protocol passes as it is, and a placeholder in it ends the tunnel before it leaves", async () => {
    recorded.length = 0;
    expect(ok(await tunnel(2222, "SSH-2.0-test\r\nplain bytes\n"), "clean")).toBe("bye\n");
    expect(Buffer.concat(recorded).toString()).toBe("SSH-2.0-test\r\nplain bytes\n");
    recorded.length = 0;
    // An upper-case verb and a space is not HTTP yet: SMTP's EHLO passes as it is.
    expect(ok(await tunnel(2222, "EHLO client.example\r\n"), "smtp-like")).toBe("bye\n");
    expect(Buffer.concat(recorded).toString()).toBe("EHLO client.example\r\n");
    recorded.length = 0;
    const before = (await sb.usage()).egress.blocked;
    const closedBefore = counts.recorderClosed;
    const r = ok(await tunnel(2222, "SSH-2.0-test\r\nkey $OPENAI_KEY\n"), "guarded");
    expect(r === "" || r === "closed").toBe(true);
    // Everything the recorder will ever get has arrived once its side of the tunnel is closed.
    await expect.poll(() => counts.recorderClosed, { timeout: 5000, interval: 10 }).toBe(closedBefore + 1);
    const got = Buffer.concat(recorded).toString();
    expect(got).not.toContain(P.OPENAI_KEY);
    expect(got).not.toContain(OPENAI);
    expect((await sb.usage()).egress.blocked).toBe(before + 1);
    const last = (await sb.egressLog()).at(-1)!;
    expect(last).toMatchObject({ host: "tcp.example.test", port: 2222, method: "CONNECT", allowed: false, secret: "OPENAI_KEY" });
    counts.refusalsSeen++;
  });
});

describeAccountingAndLeaks(s);
