"""The local tar extractor ``download`` uses on what a (possibly hostile) sandbox sent, tested
directly with archives crafted by Python's tarfile module (mirrors packages/client/test/tar.test.ts)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sbx import TarEntryError
from sbx._tar import pack_tree, unpack_tar

from .trees import TREE_BYTES, TREE_ENTRIES, make_tree, snapshot

Entry = tuple[dict[str, object], bytes | None]
MTIME = 1_700_000_000


def make_tar(entries: list[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar archive exactly as given, with no sanitising of names, links or types."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for header, body in entries:
            info = tarfile.TarInfo(str(header["name"]))
            info.mode = 0o644
            info.mtime = MTIME
            for key, value in header.items():
                if key != "name":
                    setattr(info, key, value)
            if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(body or b"")
                tar.addfile(info, io.BytesIO(body or b""))
            else:
                tar.addfile(info)
    return buf.getvalue()


def unpack(archive: bytes, dest: Path, max_entries: int = 1_000_000) -> tuple[int, int]:
    result = unpack_tar(io.BytesIO(archive), str(dest), max_entries=max_entries)
    return (result.entries, result.bytes)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """root/dest is the target (already holding a file); root/sentinel and root/outside are
    siblings an escaping entry would reach."""
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("was here before")
    (tmp_path / "sentinel").mkdir()
    (tmp_path / "sentinel" / "canary").write_text("canary")
    (tmp_path / "sentinel" / "canary").chmod(0o644)
    (tmp_path / "outside").mkdir()
    yield tmp_path


SYM, LNK, DIR = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE

# (label, entries given root, expected message, tar format)
HOSTILE: list[tuple[str, Callable[[Path], list[Entry]], str, int]] = [
    ("an entry named ../x", lambda r: [({"name": "../x"}, b"escaped")], r"refusing tar entry '\.\./x': contains '\.\.' and would escape", tarfile.PAX_FORMAT),
    ("an entry overwriting a sibling's file", lambda r: [({"name": "../sentinel/canary"}, b"pwned")], r"refusing tar entry '\.\./sentinel/canary': contains '\.\.'", tarfile.PAX_FORMAT),
    ("an absolute entry", lambda r: [({"name": str(r / "outside" / "abs")}, b"absolute")], r"is an absolute path", tarfile.PAX_FORMAT),
    ("an absolute entry in a GNU archive", lambda r: [({"name": str(r / "outside" / "abs")}, b"absolute")], r"is an absolute path", tarfile.GNU_FORMAT),
    ("an entry named a/../../x", lambda r: [({"name": "a/../../x"}, b"escaped")], r"refusing tar entry 'a/\.\./\.\./x': contains '\.\.'", tarfile.PAX_FORMAT),
    ("'..' hidden in a ustar prefix", lambda r: [({"name": "d" * 120 + "/../../prefix-escape"}, b"escaped")], r"contains '\.\.'", tarfile.USTAR_FORMAT),
    ("'..' in a pax path", lambda r: [({"name": "é/../../pax-escape"}, b"escaped")], r"refusing tar entry 'é/\.\./\.\./pax-escape': contains '\.\.'", tarfile.PAX_FORMAT),
    ("'..' in a GNU long name", lambda r: [({"name": "l" * 120 + "/../../../gnu-escape"}, b"escaped")], r"contains '\.\.'", tarfile.GNU_FORMAT),
    (
        "a symlink to an absolute directory, then a file through it",
        lambda r: [({"name": "link", "type": SYM, "linkname": str(r / "outside")}, None), ({"name": "link/pwned"}, b"through the link")],
        r"refusing tar entry 'link/pwned': 'link' is a symlink; refusing to write through it",
        tarfile.PAX_FORMAT,
    ),
    (
        "a relative symlink climbing out, then a file through it",
        lambda r: [({"name": "up", "type": SYM, "linkname": "../outside"}, None), ({"name": "up/pwned"}, b"through the link")],
        r"refusing tar entry 'up/pwned': 'up' is a symlink; refusing to write through it",
        tarfile.PAX_FORMAT,
    ),
    (
        "a symlink deep in the tree, then a file through it",
        lambda r: [
            ({"name": "a/b", "type": DIR}, None),
            ({"name": "a/b/c", "type": SYM, "linkname": "../../../sentinel"}, None),
            ({"name": "a/b/c/canary"}, b"pwned"),
        ],
        r"refusing tar entry 'a/b/c/canary': 'c' is a symlink",
        tarfile.PAX_FORMAT,
    ),
    (
        "a symlink, then a directory entry of the same name",
        lambda r: [
            ({"name": "d", "type": SYM, "linkname": "../outside"}, None),
            ({"name": "d", "type": DIR}, None),
            ({"name": "d/pwned"}, b"through the link"),
        ],
        r"something other than a directory already stands there",
        tarfile.PAX_FORMAT,
    ),
    ("a hardlink to ../sentinel/canary", lambda r: [({"name": "h", "type": LNK, "linkname": "../sentinel/canary"}, None)], r"refusing tar entry '\.\./sentinel/canary': contains '\.\.'", tarfile.PAX_FORMAT),
    ("a hardlink to an absolute path", lambda r: [({"name": "h", "type": LNK, "linkname": str(r / "sentinel" / "canary")}, None)], r"is an absolute path", tarfile.PAX_FORMAT),
    (
        "a hardlink through a symlinked directory",
        lambda r: [({"name": "s", "type": SYM, "linkname": "../sentinel"}, None), ({"name": "h", "type": LNK, "linkname": "s/canary"}, None)],
        r"refusing tar entry 'h': 's' is a symlink; refusing to write through it",
        tarfile.PAX_FORMAT,
    ),
    (
        "a hardlink to a symlink pointing out",
        lambda r: [({"name": "s", "type": SYM, "linkname": str(r / "sentinel" / "canary")}, None), ({"name": "h", "type": LNK, "linkname": "s"}, None)],
        r"refusing tar entry 'h': hardlink target 's' is not a file unpacked into the target directory",
        tarfile.PAX_FORMAT,
    ),
    ("a hardlink to a file that is not there", lambda r: [({"name": "h", "type": LNK, "linkname": "missing"}, None)], r"refusing tar entry 'h': hardlink target 'missing' is not a file", tarfile.PAX_FORMAT),
    (
        "a character device",
        lambda r: [({"name": "null", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3, "mode": 0o666}, None)],
        r"refusing tar entry 'null': is a character-device; only files, directories, symlinks and hardlinks are allowed",
        tarfile.PAX_FORMAT,
    ),
    ("a block device", lambda r: [({"name": "disk", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0, "mode": 0o660}, None)], r"refusing tar entry 'disk': is a block-device", tarfile.PAX_FORMAT),
    ("a fifo", lambda r: [({"name": "pipe", "type": tarfile.FIFOTYPE}, None)], r"refusing tar entry 'pipe': is a fifo", tarfile.PAX_FORMAT),
    ("an unknown entry type", lambda r: [({"name": "odd", "type": b"Z"}, None)], r"refusing tar entry 'odd': is of type b'Z'; only files", tarfile.PAX_FORMAT),
    ("a file entry naming the target itself", lambda r: [({"name": "."}, b"x")], r"refusing tar entry '\.': names the target directory itself", tarfile.PAX_FORMAT),
]


@pytest.mark.parametrize(("label", "entries", "message", "fmt"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_refuses_hostile_archives_and_writes_nothing_outside(root: Path, label: str, entries: Callable[[Path], list[Entry]], message: str, fmt: int) -> None:
    before = snapshot(root)
    archive = make_tar([({"name": "first.txt"}, b"unpacked before the bad entry"), *entries(root)], fmt)
    with pytest.raises(TarEntryError) as info:
        unpack(archive, root / "dest")
    assert info.value.code == "EINVAL"
    assert re.search(message, str(info.value)), str(info.value)
    # Nothing anywhere under root changed: not the siblings, not dest (rolled back).
    assert snapshot(root) == before


def test_replaces_a_symlink_by_a_file_instead_of_writing_through_it(root: Path) -> None:
    dest = root / "dest"
    archive = make_tar([
        ({"name": "f", "type": SYM, "linkname": str(root / "sentinel" / "canary")}, None),
        ({"name": "f"}, b"replaced"),
        ({"name": "g", "type": SYM, "linkname": "../sentinel/canary"}, None),
        ({"name": "g"}, b"replaced too"),
    ])
    assert unpack(archive, dest) == (4, len(b"replaced") + len(b"replaced too"))
    assert not (dest / "f").is_symlink() and (dest / "f").read_text() == "replaced"
    assert (dest / "g").read_text() == "replaced too"
    assert (root / "sentinel" / "canary").read_text() == "canary"
    assert (root / "sentinel" / "canary").stat().st_nlink == 1


def test_refuses_to_write_through_a_symlink_already_in_dest(root: Path) -> None:
    (root / "dest" / "pre-link").symlink_to("../outside")
    before = snapshot(root)
    with pytest.raises(TarEntryError, match="'pre-link' is a symlink; refusing to write through it"):
        unpack(make_tar([({"name": "pre-link/pwned"}, b"x")]), root / "dest")
    assert snapshot(root) == before


def test_drops_setuid_setgid_sticky_and_ownership(root: Path) -> None:
    dest = root / "dest"
    archive = make_tar([
        ({"name": "suid", "mode": 0o4755, "uid": 4242, "gid": 4242, "uname": "evil", "gname": "evil"}, b"#!/bin/sh\n"),
        ({"name": "sgid", "mode": 0o2750, "uid": 0, "gid": 0}, b"x"),
        ({"name": "sticky", "type": DIR, "mode": 0o1777, "uid": 4242, "gid": 4242}, None),
        ({"name": "sticky/all", "mode": 0o7777, "uid": 4242, "gid": 4242}, b"y"),
    ])
    unpack(archive, dest)
    me = (os.getuid(), os.getgid())
    suid = (dest / "suid").stat()
    assert suid.st_mode & 0o7777 == 0o755
    assert (suid.st_uid, suid.st_gid) == me
    assert (dest / "sgid").stat().st_mode & 0o7777 == 0o750
    sticky = (dest / "sticky").stat()
    assert sticky.st_mode & 0o7000 == 0
    assert (sticky.st_uid, sticky.st_gid) == me
    every = (dest / "sticky" / "all").stat()
    assert every.st_mode & 0o7777 == 0o777
    assert (every.st_uid, every.st_gid) == me


def test_hardlinks_inside_the_tree_are_kept(root: Path) -> None:
    dest = root / "dest"
    unpack(make_tar([({"name": "a/file"}, b"shared"), ({"name": "b/link", "type": LNK, "linkname": "a/file"}, None)]), dest)
    assert (dest / "b" / "link").read_bytes() == b"shared"
    assert (dest / "a" / "file").stat().st_ino == (dest / "b" / "link").stat().st_ino


def test_a_failure_removes_what_it_unpacked_and_keeps_what_was_there(root: Path) -> None:
    (root / "dest" / "existing-dir-file").write_text("mine")
    before = snapshot(root)
    archive = make_tar([
        ({"name": "newdir", "type": DIR, "mode": 0o755}, None),
        ({"name": "newdir/a.txt"}, b"a"),
        ({"name": "implicit/parents/b.txt"}, b"b"),
        ({"name": "c.txt"}, b"c"),
        ({"name": "ln", "type": SYM, "linkname": "c.txt"}, None),
        ({"name": "hl", "type": LNK, "linkname": "c.txt"}, None),
        ({"name": "../escape"}, b"never"),
    ])
    with pytest.raises(TarEntryError, match=r"refusing tar entry '\.\./escape'"):
        unpack(archive, root / "dest")
    assert snapshot(root) == before


def test_a_failure_into_a_new_directory_leaves_no_directory_behind(root: Path) -> None:
    before = snapshot(root)
    with pytest.raises(TarEntryError):
        unpack(make_tar([({"name": "ok.txt"}, b"ok"), ({"name": "../escape"}, b"never")]), root / "new" / "dest")
    assert snapshot(root) == before


# Each file below is a 512-byte header and 100,000 bytes of data padded to 100,352.
@pytest.mark.parametrize(
    ("label", "files", "cut"),
    [
        ("100 bytes into the only file", 1, 512 + 100),
        ("40 KiB into the only file", 1, 512 + 40_960),
        ("in the second file's header", 2, 512 + 100_352 + 200),
        ("5 KB into the second file", 2, 512 + 100_352 + 512 + 5000),
        ("right after the last file, before the end marker", 2, 2 * (512 + 100_352)),
        ("inside the end marker", 2, 2 * (512 + 100_352) + 100),
    ],
)
def test_a_truncated_archive_fails_and_is_rolled_back(root: Path, label: str, files: int, cut: int) -> None:
    archive = make_tar([({"name": f"f{i}.bin"}, os.urandom(100_000)) for i in range(files)])
    assert cut <= len(archive) - 1024
    before = snapshot(root)
    with pytest.raises(tarfile.ReadError, match="unexpected end of data"):
        unpack(archive[:cut], root / "dest")
    assert snapshot(root) == before


def test_garbage_after_the_first_entry_is_not_taken_for_the_end(root: Path) -> None:
    archive = make_tar([({"name": "a"}, b"a"), ({"name": "b"}, b"b")])
    garbled = archive[:1024] + b"\xff" * 512 + archive[1536:]
    before = snapshot(root)
    with pytest.raises(tarfile.ReadError):
        unpack(garbled, root / "dest")
    assert snapshot(root) == before


def test_stops_after_max_entries(root: Path) -> None:
    before = snapshot(root)
    archive = make_tar([({"name": f"f{i}"}, b"x") for i in range(6)])
    with pytest.raises(TarEntryError, match="refusing tar entry 'f5': archive has more than 5 entries"):
        unpack(archive, root / "dest", max_entries=5)
    assert snapshot(root) == before
    assert unpack(archive, root / "dest", max_entries=6) == (6, 6)


def test_refuses_a_dest_that_is_not_a_directory(root: Path) -> None:
    (root / "a-file").write_text("x")
    with pytest.raises(OSError) as info:
        unpack(make_tar([({"name": "f"}, b"x")]), root / "a-file")
    assert info.value.errno in (20, 17)  # ENOTDIR, EEXIST
    assert (root / "a-file").read_text() == "x"
    (root / "a-link").symlink_to("outside")
    with pytest.raises(NotADirectoryError):
        unpack(make_tar([({"name": "f"}, b"x")]), root / "a-link")
    assert os.listdir(root / "outside") == []


def test_pack_and_unpack_round_trip(root: Path) -> None:
    src = root / "src"
    make_tree(src)
    subprocess.run(["mkfifo", str(src / "a-fifo")], check=True)
    buf = io.BytesIO()
    packed = pack_tree(str(src), buf)
    assert tuple(packed) == (TREE_ENTRIES, TREE_BYTES)
    buf.seek(0)
    assert unpack(buf.getvalue(), root / "out") == tuple(packed)
    original = snapshot(src)
    del original["a-fifo"]
    assert snapshot(root / "out") == original
    assert (root / "out" / "link-dir").is_symlink()
    assert os.readlink(root / "out" / "link-abs-dangling") == "/nonexistent/absolute/target"
    assert int((root / "out" / "readme.md").stat().st_mtime) == 1_580_608_922


def test_pack_a_single_file_under_its_basename(root: Path) -> None:
    f = root / "single.txt"
    f.write_text("just me")
    f.chmod(0o604)
    buf = io.BytesIO()
    assert tuple(pack_tree(str(f), buf)) == (1, 7)
    unpack(buf.getvalue(), root / "out")
    assert snapshot(root / "out")["single.txt"] == f"file 604 {os.getuid()}:{os.getgid()} n1 {hashlib.sha256(b'just me').hexdigest()}"
