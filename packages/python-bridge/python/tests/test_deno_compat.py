"""The README programs of Deno's Python SDK (``deno-sandbox``), with only the import changed
(``from sbx import DenoDeploy``), and the parts of it sbx has under Deno's names."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from sbx import AsyncDenoDeploy, DenoDeploy, FsFile, NotSupportedError, VolumeNotFoundError

from .conftest import Daemon


def test_readme_synchronous_api(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    sdk = DenoDeploy()

    with sdk.sandbox.create() as sb:
        # Run a shell command
        process = sb.spawn("echo", args=["Hello from the sandbox!"])
        process.wait()

        # Write and read files
        sb.fs.write_text_file("/tmp/example.txt", "Hello, World!")
        content = sb.fs.read_text_file("/tmp/example.txt")
        print(content)
    assert capsys.readouterr().out == "Hello, World!\n"


def test_readme_asynchronous_api(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        sdk = AsyncDenoDeploy()

        async with sdk.sandbox.create() as sb:
            # Run a shell command
            process = await sb.spawn("echo", args=["Hello from the sandbox!"])
            await process.wait()

            # Write and read files
            await sb.fs.write_text_file("/tmp/example.txt", "Hello, World!")
            content = await sb.fs.read_text_file("/tmp/example.txt")
            print(content)

    asyncio.run(main())
    assert capsys.readouterr().out == "Hello, World!\n"


def test_sandbox_namespace_as_denos(daemon: Daemon) -> None:
    sdk = DenoDeploy()
    with sdk.sandbox.create(memory_mb=1024, timeout="5m", labels={"suite": "deno-compat-py"}, env={"A": "1"}) as sb:
        assert sb.env.as_dict()["A"] == "1"
        assert [s.id for s in sdk.sandbox.list(labels={"suite": "deno-compat-py"})] == [sb.id]
        until = sb.extend_timeout(120)  # seconds, as Deno's Python SDK takes it
        assert until > sb.created_at
        sb.fs.write_text_file("note.txt", "same sandbox")
        with sdk.sandbox.connect(sb.id) as again:
            assert again.fs.read_text_file("note.txt") == "same sandbox"
        with sb.fs.create("f.bin") as f:
            assert isinstance(f, FsFile)
            f.write(b"abc")
        assert sb.fs.read_file("f.bin") == b"abc"
    assert sdk.sandbox.list(labels={"suite": "deno-compat-py"}) == []


def test_what_sbx_lacks_fails_clearly(daemon: Daemon) -> None:
    sdk = DenoDeploy()
    # root is passed on to the daemon, which has no such snapshot (booting from one: test_volumes.py).
    with pytest.raises(VolumeNotFoundError, match="no volume or snapshot 'snap'"), sdk.sandbox.create(root="snap"):
        pass
    with pytest.raises(NotSupportedError, match="sdk.apps.list"):
        sdk.apps.list()  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sdk.sandbox.create(region="ord") as sb:
            assert sb.id.startswith("sbx_")
    assert [str(w.message) for w in caught] == ["sbx ignores region (options of Deno's hosted sandboxes; sbx runs them on the daemon at url)"]
