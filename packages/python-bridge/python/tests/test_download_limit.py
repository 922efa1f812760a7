"""A download writes at most ``max_bytes`` onto the caller's disk: a sandbox with a 1 GiB disk can
``truncate -s 1T`` a sparse file that takes no blocks there, and would otherwise fill the caller's
disk (here, first the temporary spool) with a terabyte of zeros."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from sbx import AsyncSandbox, ResourceLimitError, Sandbox
from sbx._generated.models import ERROR_CODES
from sbx._tar import TarSizeLimit, unpack_tar
from sbx._types import DEFAULT_MAX_DOWNLOAD_BYTES

from .conftest import Daemon


def _refused(name: str, size: int, sofar: int) -> ResourceLimitError:
    return ResourceLimitError(f"{name} {size} {sofar}", ERROR_CODES["ResourceLimit"])


def _feed(data: bytes, limit: TarSizeLimit, step: int) -> None:
    for i in range(0, len(data), step):
        limit.feed(data[i : i + step])


def test_size_limit_reads_the_declared_size_before_the_data() -> None:
    # A header that declares a terabyte (base-256 for GNU, a pax "size" record for pax), and no data at all.
    info = tarfile.TarInfo("dir/" + "x" * 120 + "/huge")
    info.size = 1 << 40
    for header in (info.tobuf(format=tarfile.GNU_FORMAT), info.tobuf(format=tarfile.PAX_FORMAT)):
        with pytest.raises(ResourceLimitError, match=f"x/huge {1 << 40} 0$"):
            _feed(header, TarSizeLimit(10 << 30, _refused), 7)


def test_size_limit_counts_every_file_of_the_tree() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        sub = tarfile.TarInfo("sub")
        sub.type = tarfile.DIRTYPE
        tar.addfile(sub)
        for name in ("one", "sub/two", "three"):
            info = tarfile.TarInfo(name)
            info.size = 1000
            tar.addfile(info, io.BytesIO(bytes(1000)))
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = "one"
        tar.addfile(link)
    data = buf.getvalue()
    for step in (1, 511, 512, 4096, len(data)):
        fits = TarSizeLimit(3000, _refused)
        _feed(data, fits, step)
        assert fits.declared == 3000
        with pytest.raises(ResourceLimitError, match="^three 1000 2000$"):
            _feed(data, TarSizeLimit(2999, _refused), step)


def test_unpack_tar_stops_at_max_bytes(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("one", "two", "three"):
            info = tarfile.TarInfo(name)
            info.size = 1000
            tar.addfile(info, io.BytesIO(bytes(1000)))
    buf.seek(0)
    with pytest.raises(ResourceLimitError, match="^three 1000 2000$"):
        unpack_tar(buf, str(tmp_path / "refused"), max_bytes=2999, too_big=_refused)
    assert not (tmp_path / "refused").exists()
    buf.seek(0)
    assert unpack_tar(buf, str(tmp_path / "fits"), max_bytes=3000).bytes == 3000


def test_sparse_terabyte_and_limits(daemon: Daemon, tmp_path: Path) -> None:
    assert DEFAULT_MAX_DOWNLOAD_BYTES == 10 << 30
    with Sandbox.create(timeout="2m", disk="1GiB") as sb:
        sb.sh("bash", "-c", "mkdir -p out && echo small > out/a.txt && truncate -s 1T out/huge")
        free = shutil.disk_usage(tmp_path).free
        started = time.monotonic()
        with pytest.raises(ResourceLimitError) as err:
            sb.fs.download("/home/user/out", tmp_path / "tree")
        assert str(err.value) == (
            f"downloading /home/user/out would write more than max_bytes ({10 << 30} bytes): /home/user/out/huge is {1 << 40} bytes "
            "after 6 already; pass a larger max_bytes to download it"
        )
        with pytest.raises(ResourceLimitError, match=r"^downloading /home/user/out/huge would write more than max_bytes \(1000 bytes\)"):
            sb.fs.download("/home/user/out/huge", tmp_path / "huge", max_bytes=1000)
        assert time.monotonic() - started < 15
        assert os.listdir(tmp_path) == []
        # Other processes share this disk: allow them a little, nowhere near the limit.
        assert free - shutil.disk_usage(tmp_path).free < 64 << 20
        # The sandbox stopped sending: the connection serves the next download straight away.
        sb.fs.download("/home/user/out/a.txt", tmp_path / "a.txt")
        assert (tmp_path / "a.txt").read_text() == "small\n"

        # A tree just under the limit downloads; one byte less is refused, and what it had
        # unpacked is removed while the caller's own file in the target stays.
        sb.sh("bash", "-c", "mkdir -p t/sub && for f in t/one t/sub/two t/three; do head -c 1000 /dev/urandom > $f; done")
        sb.fs.download("/home/user/t", tmp_path / "fits", max_bytes=3000)
        assert sorted(os.listdir(tmp_path / "fits")) == ["one", "sub", "three"]
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "keep.txt").write_text("keep me")
        with pytest.raises(ResourceLimitError, match=r"/home/user/t/three is 1000 bytes after 2000 already; pass a larger max_bytes"):
            sb.fs.download("/home/user/t", tmp_path / "mine", max_bytes=2999)
        assert os.listdir(tmp_path / "mine") == ["keep.txt"]
        # A single file: exactly the limit is fine; over it, nothing is created, and a file
        # standing there is the caller's (not removed).
        sb.fs.download("/home/user/t/one", tmp_path / "one", max_bytes=1000)
        assert (tmp_path / "one").stat().st_size == 1000
        with pytest.raises(ResourceLimitError):
            sb.fs.download("/home/user/t/one", tmp_path / "one-refused", max_bytes=999)
        assert not (tmp_path / "one-refused").exists()
        with pytest.raises(TypeError, match="max_bytes must be a non-negative int"):
            sb.fs.download("/home/user/t", tmp_path / "x", max_bytes=-1)


async def test_async_growing_file_is_cut_and_removed(daemon: Daemon, tmp_path: Path) -> None:
    async with await AsyncSandbox.create(timeout="1m", disk="1GiB") as sb:
        await sb.sh("bash", "-c", "head -c 1000 /dev/zero > growing")
        grower = await sb.spawn("bash", args=["-c", "while :; do head -c 1048576 /dev/zero; done >> /home/user/growing"], stdout="null", stderr="null")
        await asyncio.sleep(0.3)
        before = (await sb.fs.stat("/home/user/growing")).size
        limit = before + (64 << 20)
        with pytest.raises(ResourceLimitError, match=rf"^/home/user/growing grew past max_bytes \({limit} bytes\) while it was downloaded; pass a larger max_bytes"):
            await sb.fs.download("/home/user/growing", tmp_path / "growing", max_bytes=limit)
        assert not (tmp_path / "growing").exists()
        await grower.kill()
        await sb.fs.remove("/home/user/growing")


async def test_async_failed_download_over_a_file_leaves_it_as_it_was(daemon: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "kept.txt"
    target.write_text("the caller's own content\n")
    async with await AsyncSandbox.create(timeout="1m") as sb:
        await sb.sh("bash", "-c", "head -c 512M /dev/zero > /home/user/big && echo new > /home/user/small.txt")
        # The failure: the sandbox killed while its 512 MiB file is on the way.
        download = asyncio.ensure_future(sb.fs.download("/home/user/big", target))
        await asyncio.sleep(0.15)
        await sb.kill()
        with pytest.raises(Exception):
            await download
    assert target.stat().st_size == 25
    assert target.read_text() == "the caller's own content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]
    # and one that succeeds replaces it, leaving nothing beside it
    with Sandbox.create(timeout="1m") as sb2:
        sb2.sh("bash", "-c", "echo new > /home/user/small.txt")
        sb2.fs.download("/home/user/small.txt", target)
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]


def test_a_download_over_a_file_keeps_its_mode_even_with_a_name_near_name_max(daemon: Daemon, tmp_path: Path) -> None:
    target = tmp_path / ("n" * 250)
    target.write_text("old\n")
    target.chmod(0o640)
    with Sandbox.create(timeout="1m") as sb:
        sb.fs.write_text_file("/home/user/new.txt", "new\n")
        sb.fs.chmod("/home/user/new.txt", 0o600)
        sb.fs.download("/home/user/new.txt", target)
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_download_into_a_fifo_someone_reads(daemon: Daemon, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o640)
    with Sandbox.create(timeout="1m") as sb:
        sb.fs.write_file("/home/user/for-fifo.bin", b"\x5a" * (3 << 20))
        sb.fs.chmod("/home/user/for-fifo.bin", 0o600)
        reader = subprocess.Popen(["sh", "-c", f"wc -c < {fifo}"], stdout=subprocess.PIPE, text=True)
        time.sleep(0.2)  # the reader has the FIFO open
        sb.fs.download("/home/user/for-fifo.bin", fifo)
        out, _ = reader.communicate(timeout=30)
    # Written in place, every byte, though a pipe holds 64 KiB; nothing left beside it.
    assert out.strip() == str(3 << 20)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]
    # and not chmod'ed to the sandbox file's mode (as root, /dev/null would have been)
    assert fifo.stat().st_mode & 0o777 == 0o640
