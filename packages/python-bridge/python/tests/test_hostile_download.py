"""Downloads onto the caller's machine follow nobody's lead but the caller's (resilience item 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sbx import AsyncSandbox, ResourceLimitError, RpcError, Sandbox, TarEntryError

from .conftest import Daemon


def test_links_fifos_and_byte_limits(daemon: Daemon, tmp_path: Path) -> None:
    with Sandbox.create(timeout="2m") as sb:
        sb.sh("bash", "-c", "echo inside > real.txt; ln -s /home/user/real.txt link; mkdir -p t/sub; echo a > t/sub/a; "
              "cd t; ln -s sub/a rel; ln -s /home/user/t/sub/a abs; ln -s /etc/shadow out; mkfifo /home/user/fifo")
        # A symlink named directly: its content, never a link.
        sb.fs.download("/home/user/link", tmp_path / "link")
        assert not (tmp_path / "link").is_symlink() and (tmp_path / "link").read_text() == "inside\n"
        # A tree with a link out of it: refused, nothing left behind; or skipped on request.
        with pytest.raises(TarEntryError, match="is a symlink to '/etc/shadow', outside what is being unpacked"):
            sb.fs.download("/home/user/t", tmp_path / "refused")
        assert not (tmp_path / "refused").exists()
        sb.fs.download("/home/user/t", tmp_path / "t", symlinks="skip")
        assert sorted(os.listdir(tmp_path / "t")) == ["abs", "rel", "sub"]
        assert os.readlink(tmp_path / "t" / "abs") == "sub/a" and (tmp_path / "t" / "abs").read_text() == "a\n"
        # A FIFO is refused without waiting for a writer.
        with pytest.raises(RpcError) as fifo:
            sb.fs.read_file("/home/user/fifo")
        assert fifo.value.errno == "EINVAL"
        # read_file holds at most max_bytes.
        sb.sh("bash", "-c", "head -c 3000000 /dev/zero > three")
        with pytest.raises(ResourceLimitError, match=r"holds more than max_bytes \(1000000 bytes\)"):
            sb.fs.read_file("/home/user/three", max_bytes=1_000_000)
        assert len(sb.fs.read_file("/home/user/three", max_bytes=3_000_000)) == 3_000_000


async def test_async_read_limit(daemon: Daemon) -> None:
    async with await AsyncSandbox.create(timeout="1m") as sb:
        await sb.sh("bash", "-c", "head -c 2000000 /dev/zero > two")
        with pytest.raises(ResourceLimitError):
            await sb.fs.read_text_file("/home/user/two", max_bytes=1000)
