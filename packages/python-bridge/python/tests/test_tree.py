"""Directory trees and single files, both ways, and fs.walk, against a real daemon."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sbx import AsyncSandbox, Sandbox, TarEntryError, WalkEntry

from .conftest import Daemon
from .trees import make_tree, snapshot

REMOTE = "/home/user/tree"


def remote_listing(sb: Sandbox, path: str) -> dict[str, str]:
    """What the sandbox sees under ``path``: type, permission bits and link target per entry."""
    out = sb.sh("find . -mindepth 1 -printf '%P %y %m %l\\n' | sort", cwd=path).stdout_text or ""
    return dict(line.split(" ", 1) for line in out.splitlines())


def without_abs_link(tree: dict[str, str]) -> dict[str, str]:
    """A tree's snapshot less its link to an absolute path, which downloads skip when told to."""
    return {k: v for k, v in tree.items() if k != "link-abs-dangling"}


def test_tree_round_trip_sync(daemon: Daemon, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    with Sandbox.create() as sb:
        sb.fs.upload(src, REMOTE)
        seen = remote_listing(sb, REMOTE)
        assert seen["empty-dir"] == "d 755 "
        assert seen["private"] == "d 750 "
        assert seen["private/key"] == "f 600 "
        assert seen["bin/tool"] == "f 755 "
        assert seen["empty-file"] == "f 640 "
        assert seen["link-dir"] == "l 777 deep/er"
        assert seen["link-abs-dangling"] == "l 777 /nonexistent/absolute/target"
        assert seen["deep/er/link-up"] == "l 777 ../../readme.md"
        assert len(seen) == 15
        assert sb.fs.read_text_file(f"{REMOTE}/link-rel") == "# hello\n"

        out = tmp_path / "out"
        # link-abs-dangling leads out of the tree: a download refuses it (and leaves nothing) unless told to skip it.
        with pytest.raises(TarEntryError, match="refusing tar entry 'link-abs-dangling'"):
            sb.fs.download(REMOTE, out)
        assert not out.exists()
        sb.fs.download(REMOTE, out, symlinks="skip")
    # Same types, modes, contents and link targets; owned by us, not by the sandbox's user.
    assert snapshot(out) == without_abs_link(snapshot(src))
    assert (out / "link-dir").is_symlink()


async def test_tree_round_trip_async(daemon: Daemon, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    async with await AsyncSandbox.create() as sb:
        await sb.fs.upload(src, REMOTE)
        await sb.fs.download(REMOTE, tmp_path / "out", symlinks="skip")
        # Into a directory that already exists, keeping what is there.
        (tmp_path / "again").mkdir()
        (tmp_path / "again" / "mine.txt").write_text("mine")
        # (deep/er/link-up climbs to ../../readme.md, out of deep/: skipped)
        await sb.fs.download(f"{REMOTE}/deep", tmp_path / "again", symlinks="skip")
    assert snapshot(tmp_path / "out") == without_abs_link(snapshot(src))
    assert sorted(os.listdir(tmp_path / "again")) == ["er", "mine.txt"]
    assert (tmp_path / "again" / "er" / "est" / "data.bin").read_bytes() == (src / "deep" / "er" / "est" / "data.bin").read_bytes()
    assert not os.path.lexists(tmp_path / "again" / "er" / "link-up")


def test_single_file_both_ways(daemon: Daemon, tmp_path: Path) -> None:
    f = tmp_path / "tool.sh"
    f.write_bytes(b"#!/bin/sh\necho from the host\n" + bytes(range(256)) * 1000)
    f.chmod(0o751)
    with Sandbox.create() as sb:
        sb.fs.upload(f, "tool.sh")
        info = sb.fs.stat("tool.sh")
        assert (info.is_file, info.mode, info.size) == (True, 0o100751, f.stat().st_size)  # the raw st_mode, as Deno's
        assert sb.sh("./tool.sh | head -1").text() == "from the host"
        sb.fs.chmod("tool.sh", 0o700)
        back = tmp_path / "back.sh"
        sb.fs.download("tool.sh", back)
        # A symlink named directly is followed in the sandbox: its content comes back, never a link.
        sb.fs.symlink("tool.sh", "alias")
        sb.fs.download("alias", tmp_path / "alias")
    assert back.read_bytes() == f.read_bytes()
    assert stat.S_IMODE(back.stat().st_mode) == 0o700
    assert not (tmp_path / "alias").is_symlink()
    assert (tmp_path / "alias").read_bytes() == f.read_bytes()


async def test_single_file_both_ways_async(daemon: Daemon, tmp_path: Path) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(os.urandom(3 << 20))
    f.chmod(0o640)
    async with await AsyncSandbox.create() as sb:
        await sb.fs.upload(f, "/tmp/data.bin")
        assert stat.S_IMODE((await sb.fs.stat("/tmp/data.bin")).mode) == 0o640
        await sb.fs.download("/tmp/data.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == f.read_bytes()
    assert stat.S_IMODE((tmp_path / "back.bin").stat().st_mode) == 0o640


def test_download_of_a_hostile_tree_stays_inside(daemon: Daemon, tmp_path: Path) -> None:
    # What a sandbox can make: links pointing out of the tree, a FIFO, setuid bits.
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "canary").write_text("canary")
    before = snapshot(sentinel)
    with Sandbox.create() as sb:
        sb.fs.mkdir("t/sub", recursive=True)
        sb.fs.symlink(str(sentinel), "t/out")
        sb.fs.symlink(str(sentinel / "canary"), "t/sub/canary")
        sb.sh("mkfifo pipe && echo x > suid && chmod 4755 suid", cwd="t")
        with pytest.raises(TarEntryError, match="outside what is being unpacked"):
            sb.fs.download("t", tmp_path / "t")
        assert not (tmp_path / "t").exists()
        sb.fs.download("t", tmp_path / "t", symlinks="skip")
    assert snapshot(sentinel) == before
    # No link that leads out of the download is ever made.
    assert not os.path.lexists(tmp_path / "t" / "out")
    assert not os.path.lexists(tmp_path / "t" / "sub" / "canary")
    assert not (tmp_path / "t" / "pipe").exists()
    st = (tmp_path / "t" / "suid").stat()
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


def build_walk_tree(sb: Sandbox) -> None:
    sb.sh("mkdir -p w/a/b w/node_modules/x w/empty && touch w/top.txt w/a/one.py w/a/b/two.py w/node_modules/x/dep.js && ln -s a/one.py w/link")


def test_walk_sync(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        build_walk_tree(sb)
        entries = list(sb.fs.walk("w"))
        assert entries[0] == WalkEntry(path="/home/sandbox/w", name="w", is_file=False, is_directory=True, is_symlink=False)
        by_path = {e.path.removeprefix("/home/sandbox/w"): e for e in entries}
        assert sorted(by_path) == ["", "/a", "/a/b", "/a/b/two.py", "/a/one.py", "/empty", "/link", "/node_modules", "/node_modules/x", "/node_modules/x/dep.js", "/top.txt"]
        assert by_path["/link"].is_symlink and not by_path["/link"].is_file
        assert by_path["/a/b/two.py"] == WalkEntry(path="/home/sandbox/w/a/b/two.py", name="two.py", is_file=True, is_directory=False, is_symlink=False)
        # Depth-first: every entry comes after its parent directory.
        order = [e.path for e in entries]
        for i, p in enumerate(order[1:], 1):
            assert os.path.dirname(p) in order[:i]

        files = [e.path for e in sb.fs.walk("/home/sandbox/w", include_dirs=False, include_symlinks=False, skip=[r"/node_modules$"])]
        assert sorted(files) == ["/home/sandbox/w/a/b/two.py", "/home/sandbox/w/a/one.py", "/home/sandbox/w/top.txt"]
        shallow = sorted(e.name for e in sb.fs.walk("w", max_depth=1))
        assert shallow == ["a", "empty", "link", "node_modules", "top.txt", "w"]
        assert [e.name for e in sb.fs.walk("w", match=[r"\.py$"])] in (["one.py", "two.py"], ["two.py", "one.py"])


async def test_walk_async(daemon: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        await sb.sh("mkdir -p w/a && touch w/a/f && ln -s a w/l")
        got = [(e.path, e.is_directory, e.is_symlink) async for e in sb.fs.walk("w")]
        assert sorted(got) == [("/home/sandbox/w", True, False), ("/home/sandbox/w/a", True, False), ("/home/sandbox/w/a/f", False, False), ("/home/sandbox/w/l", False, True)]
        with pytest.raises(Exception) as info:
            [e async for e in sb.fs.walk("missing")]
        assert getattr(info.value, "errno", None) == "ENOENT"
