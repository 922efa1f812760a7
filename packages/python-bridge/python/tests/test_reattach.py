"""processes() and attach(): reattaching to a running process's output after a reconnect."""

from __future__ import annotations

import pytest

from sbx import AsyncSandbox, InvalidOptionError, RpcError, Sandbox

from .conftest import Daemon


def test_reattach_from_offset_after_reconnect(daemon: Daemon) -> None:
    first = Sandbox.create(timeout="5m")
    p = first.spawn("bash", args=["-c", "for i in $(seq 10 29); do echo line$i; sleep 0.03; done; exit 3"])
    assert p.stdout is not None
    seen = b""
    for chunk in p.stdout:
        seen += chunk
        if len(seen) >= 14:
            break
    assert seen[:14] == b"line10\nline11\n"
    first.close()
    with Sandbox.connect(first.id) as again:
        [listed] = again.processes()
        assert (listed.pid, listed.cmd, listed.running) == (p.pid, "bash", True)
        assert listed.stdout is not None and listed.stdout.start == 0
        resumed = again.attach(p.pid, stdout_from=14)
        assert resumed.stdout_from == 14
        out = resumed.output()
        assert out.stdout == b"".join(b"line%d\n" % i for i in range(12, 30))
        assert out.status.code == 3
        with pytest.raises(InvalidOptionError, match="past the end of stdout"):
            again.attach(p.pid, stdout_from=10**6)
        with pytest.raises(RpcError, match="no process with pid"):
            again.attach(999999)
        again.kill()


async def test_attach_after_exit_async(daemon: Daemon) -> None:
    async with await AsyncSandbox.create(timeout="5m") as sb:
        p = await sb.spawn("bash", args=["-c", "printf hello; exit 6"])
        await p.wait()
        r = await sb.attach(p.pid, stdout_from=2)
        out = await r.output()
        assert (out.stdout, out.status.code) == (b"llo", 6)
        [listed] = await sb.processes()
        assert listed.running is False and listed.status is not None and listed.status.code == 6
