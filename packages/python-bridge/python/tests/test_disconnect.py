"""A daemon that dies mid-call fails every pending call with ConnectionError, without hanging."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import pytest

from sbx import AsyncSandbox, ConnectionError, Sandbox

from .conftest import Daemon


def test_sync_call_fails_when_daemon_dies(own_daemon: Daemon) -> None:
    sb = Sandbox.create(url=own_daemon.url, token=own_daemon.token)
    p = sb.spawn("sleep", args=["60"])
    threading.Timer(0.5, lambda: own_daemon.proc.send_signal(signal.SIGKILL)).start()
    started = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        p.wait()
    assert time.monotonic() - started < 20
    assert info.value.code == "CONNECTION_ERROR"
    with pytest.raises(ConnectionError):
        sb.fs.read_file("/etc/hostname")
    sb.close()


async def test_async_call_fails_when_daemon_dies(own_daemon: Daemon) -> None:
    sb = await AsyncSandbox.create(url=own_daemon.url, token=own_daemon.token)
    p = await sb.spawn("sleep", args=["60"])
    asyncio.get_running_loop().call_later(0.5, own_daemon.proc.send_signal, signal.SIGKILL)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(sb.sh("sleep 60"), 20)
    with pytest.raises(ConnectionError):
        await p.wait()
    await sb.close()
