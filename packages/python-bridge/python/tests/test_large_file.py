"""A 200 MiB file goes in and out with bounded memory: flow control holds on both sides."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from sbx import Sandbox

from .conftest import Daemon

SIZE = 200 << 20
CHUNK = 1 << 20


def rss_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def chunks(h: "hashlib._Hash") -> Iterator[bytes]:
    block = bytes(range(256)) * (CHUNK // 256)
    for i in range(SIZE // CHUNK):
        piece = block[i % 256 :] + block[: i % 256]
        h.update(piece)
        yield piece


def test_200_mib_round_trip_bounded_memory(daemon: Daemon) -> None:
    with Sandbox.create(disk="1GiB") as sb:
        base = rss_kib()
        sent = hashlib.sha256()
        assert sb.fs.write_file("big.bin", chunks(sent)) == SIZE
        assert sb.fs.stat("big.bin").size == SIZE
        grown_write = rss_kib() - base
        got = hashlib.sha256()
        n = 0
        for chunk in sb.fs.read_file_stream("big.bin"):
            got.update(chunk)
            n += len(chunk)
        grown = rss_kib() - base
        assert n == SIZE
        assert got.hexdigest() == sent.hexdigest()
        # The file is 200 MiB; staying under 40 MiB of growth shows it never sat in memory.
        assert grown_write < 40 * 1024, f"RSS grew {grown_write} KiB while writing"
        assert grown < 40 * 1024, f"RSS grew {grown} KiB while reading"
