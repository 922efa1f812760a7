"""The async client against a real daemon: same names, awaited."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from sbx import AsyncSandbox, InvalidOptionError, SandboxCommandError, SandboxNotFoundError

from .conftest import Daemon


async def test_spawn_stream_stdin_kill(daemon: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        p = await sb.spawn("python3", args=["-c", "print(1)"])
        out = await p.output()
        assert (out.status.code, out.stdout, out.stdout_text) == (0, b"1\n", "1\n")

        p = await sb.spawn("cat", stdin="piped")
        await p.write_stdin("abc")
        await p.close_stdin()
        assert p.stdout is not None
        assert b"".join([c async for c in p.stdout]) == b"abc"
        assert (await p.wait()).success

        p = await sb.spawn("sleep", args=["30"])
        await p.kill("SIGTERM")
        status = await p.wait()
        assert (status.signal, status.code, status.success) == ("SIGTERM", 143, False)


async def test_concurrent_calls(daemon: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        outs = await asyncio.gather(*(sb.sh("echo", str(i)) for i in range(10)))
        assert [o.text() for o in outs] == [str(i) for i in range(10)]


async def test_fs_round_trip(daemon: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        await sb.fs.write_text_file("/home/user/a.txt", "hi")
        assert await sb.fs.read_text_file("/home/user/a.txt") == "hi"
        data = bytes(range(256)) * 10000
        await sb.fs.write_file("b.bin", data)
        assert await sb.fs.read_file("b.bin") == data
        assert (await sb.fs.stat("b.bin")).size == len(data)
        out = await sb.sh("ls", "-la", "/home/user")
        assert "a.txt" in (out.stdout_text or "")


async def test_errors(daemon: Daemon) -> None:
    with pytest.raises(InvalidOptionError) as info:
        await AsyncSandbox.create(cpus=-1)
    assert "cpus" in str(info.value)
    with pytest.raises(SandboxNotFoundError):
        await AsyncSandbox.connect("sbx_doesnotexist000000000000")
    with pytest.raises(InvalidOptionError) as bad_net:
        await AsyncSandbox.create(allow_net=["*.com"])
    assert str(bad_net.value).startswith("params.allow_net[0]: ")
    with pytest.raises(InvalidOptionError) as bad_secret:
        await AsyncSandbox.create(secrets={"K": {"hosts": ["example.com"], "value": "v"}})
    assert "secrets.K: value must be at least 8 characters" in str(bad_secret.value)
    async with await AsyncSandbox.create() as sb:
        with pytest.raises(SandboxCommandError) as err:
            await sb.sh("false")
        assert err.value.status.code == 1


async def test_list_by_label(daemon: Daemon) -> None:
    tag = uuid.uuid4().hex
    async with await AsyncSandbox.create(labels={"suite": tag}) as sb:
        assert [s.id for s in await AsyncSandbox.list(labels={"suite": tag})] == [sb.id]
        await sb.env.set("My_Var", "1")
        env = await sb.env.to_object()  # the whole environment a process starts with, keys as given
        assert env["My_Var"] == "1" and env["HOME"] == "/home/sandbox"
