"""A process that outgrows the sandbox's memory cap is OOM-killed, reported as such, and the
sandbox carries on."""

from __future__ import annotations

from sbx import AsyncSandbox, Sandbox

from .conftest import Daemon

# Writes every page of 1 GiB (a bare bytearray(n) would be lazily zeroed and never touch them).
HOG = "data = b'x' * (1 << 30); print(len(data))"


def test_memory_hog_is_oom_killed_sync(daemon: Daemon) -> None:
    with Sandbox.create(memory="128MiB") as sb:
        out = sb.spawn("python3", args=["-c", HOG]).output()
        assert out.status.oom is True
        assert out.status.signal == "SIGKILL"
        assert (out.status.code, out.status.success) == (137, False)
        assert out.stdout == b""
        # Still usable: new processes run, and one that fits in the cap is not blamed for the old OOM.
        assert sb.sh("echo still here").text() == "still here"
        fits = sb.spawn("python3", args=["-c", "data = b'x' * (32 << 20); print(len(data))"]).output()
        assert (fits.status.code, fits.status.oom, fits.stdout_text) == (0, False, f"{32 << 20}\n")
        assert sb.usage().memory_peak_bytes <= 128 << 20


async def test_memory_hog_is_oom_killed_async(daemon: Daemon) -> None:
    async with await AsyncSandbox.create(memory="128MiB") as sb:
        status = await (await sb.spawn("python3", args=["-c", HOG], stdout="null")).wait()
        assert (status.oom, status.signal, status.code) == (True, "SIGKILL", 137)
        assert (await sb.sh("echo ok")).text() == "ok"
