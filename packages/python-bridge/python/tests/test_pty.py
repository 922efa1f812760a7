"""spawn(pty=True) and resize, sync and async, against a real daemon."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from sbx import AsyncSandbox, InvalidOptionError, Sandbox

from .conftest import Daemon


def _until(chunks: Iterator[bytes], seen: list[bytes], pattern: bytes) -> None:
    """Reads the terminal until ``pattern`` shows up in what it printed."""
    while not re.search(pattern, b"".join(seen)):
        seen.append(next(chunks))


def test_pty_size_tty_merged_stderr(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        p = sb.spawn("bash", args=["-c", "tty; stty size; test -t 0 && test -t 2 && echo ttys; echo err >&2"], pty=True, cols=100, rows=30)
        assert p.stderr is None
        out = p.output()
        lines = (out.stdout_text or "").split("\r\n")
        assert re.fullmatch(r"/dev/pts/\d+", lines[0])
        assert lines[1:4] == ["30 100", "ttys", "err"]
        assert out.status.code == 0


def test_pty_interactive_resize_exit_status(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        p = sb.spawn("bash", args=["--norc", "-i"], pty=True, stdin="piped", env={"PS1": "sbx$ "})
        assert p.stdout is not None
        chunks = iter(p.stdout)
        seen: list[bytes] = []
        _until(chunks, seen, rb"sbx\$ $")
        p.write_stdin("trap 'echo winch $(stty size)' WINCH; echo $((6*7))\n")
        _until(chunks, seen, rb"42\r\n")
        p.resize(120, 40)
        p.write_stdin("stty size\n")
        _until(chunks, seen, rb"\r\n40 120\r\n")
        p.write_stdin("exit 4\n")
        for _ in chunks:
            pass
        assert p.wait().code == 4


def test_pty_bad_options(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        with pytest.raises(ValueError, match="cols: must be an integer from 1 to 65535"):
            sb.spawn("true", pty=True, cols=0)
        with pytest.raises(ValueError, match="only with pty=True"):
            sb.spawn("true", rows=3)
        with pytest.raises(ValueError, match='stderr: must be "null"'):
            sb.spawn("true", pty=True, stderr="piped")
        p = sb.spawn("sleep", args=["30"])
        with pytest.raises(InvalidOptionError, match="not started with a pty"):
            p.resize(80, 24)
        p.kill("SIGKILL")


async def test_pty_async(daemon: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        p = await sb.spawn("bash", args=["-c", "trap 'stty size; exit 0' WINCH; echo ready; while :; do sleep 0.05; done"], pty=True)
        assert p.stdout is not None
        seen = b""
        async for chunk in p.stdout:
            seen += chunk
            if b"ready\r\n" in seen:
                break
        await p.resize(90, 20)
        async for chunk in p.stdout:
            seen += chunk
        assert seen.endswith(b"20 90\r\n")
        assert (await p.wait()).code == 0
