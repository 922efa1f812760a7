"""The local tar extractor ``download`` uses on what a (possibly hostile) sandbox sent, tested
directly with archives crafted by Python's tarfile module (mirrors packages/client/test/tar/tar.test.ts)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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

TYPES = {"file": tarfile.REGTYPE, "directory": DIR, "symlink": SYM, "link": LNK, "character-device": tarfile.CHRTYPE, "block-device": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}


def shared_case(case: dict[str, Any]) -> tuple[str, Callable[[Path], list[Entry]], str, int]:
    """A case of the table the TypeScript tests share (``{base}`` is root, ``{up}`` the way there from dest)."""

    def place(text: str, r: Path) -> str:
        return text.replace("{base}", str(r)).replace("{up}", "..")

    def entries(r: Path) -> list[Entry]:
        out: list[Entry] = []
        for e in case["entries"]:
            header: dict[str, object] = {k: place(v, r) if isinstance(v, str) else v for k, v in e.items() if k not in ("type", "body")}
            if "type" in e:
                header["type"] = TYPES[e["type"]]
            out.append((header, e["body"].encode() if "body" in e else None))
        return out

    fmt = tarfile.USTAR_FORMAT if case.get("format") == "ustar" else tarfile.PAX_FORMAT
    message = re.escape(case["refusal"].replace("{up}", "..")).replace(re.escape("{base}"), "{base}")
    return (case["name"], entries, message, fmt)


# The shared table (packages/client/test/helpers/tar-attacks.ts), then what only tarfile can write.
# (label, entries given root, expected message with {base} for root, tar format)
HOSTILE: list[tuple[str, Callable[[Path], list[Entry]], str, int]] = [
    *(shared_case(c) for c in json.loads((Path(__file__).parent / "tar_attacks.json").read_text())["cases"]),
    ("an absolute entry in a GNU archive", lambda r: [({"name": str(r / "outside" / "abs")}, b"absolute")], r"is an absolute path", tarfile.GNU_FORMAT),
    ("'..' in a GNU long name", lambda r: [({"name": "l" * 120 + "/../../../gnu-escape"}, b"escaped")], r"contains '\.\.'", tarfile.GNU_FORMAT),
    ("an unknown entry type", lambda r: [({"name": "odd", "type": b"Z"}, None)], r"refusing tar entry 'odd': is of type b'Z'; only files", tarfile.PAX_FORMAT),
]


@pytest.mark.parametrize(("label", "entries", "message", "fmt"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_refuses_hostile_archives_and_writes_nothing_outside(root: Path, label: str, entries: Callable[[Path], list[Entry]], message: str, fmt: int) -> None:
    before = snapshot(root)
    archive = make_tar([({"name": "first.txt"}, b"unpacked before the bad entry"), *entries(root)], fmt)
    with pytest.raises(TarEntryError) as info:
        unpack(archive, root / "dest")
    assert info.value.code == "EINVAL"
    assert re.search(message.replace("{base}", re.escape(str(root))), str(info.value)), str(info.value)
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
