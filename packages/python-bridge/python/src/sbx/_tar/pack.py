"""Packs a local file or directory tree as a tar archive."""

from __future__ import annotations

import os
import stat
import tarfile
from typing import IO, NamedTuple

__all__ = ["PackResult", "pack_tree"]


class PackResult(NamedTuple):
    entries: int
    bytes: int


def pack_tree(root: str, out: IO[bytes]) -> PackResult:
    """Writes the tree at ``root`` to ``out`` as tar, names relative to ``root`` (a single file
    is named by its basename). Symlinks stay symlinks; sockets, FIFOs and devices are left out;
    only permission bits travel, never ownership or setuid/setgid/sticky bits."""
    entries = 0
    size = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:

        def add(path: str, name: str) -> None:
            nonlocal entries, size
            st = os.lstat(path)
            info = tarfile.TarInfo(name)
            info.mode = st.st_mode & 0o777
            info.mtime = int(st.st_mtime)
            if stat.S_ISDIR(st.st_mode):
                if name:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                    entries += 1
                for child in sorted(os.listdir(path)):
                    add(os.path.join(path, child), f"{name}/{child}" if name else child)
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
                entries += 1
            elif stat.S_ISREG(st.st_mode):
                # Hard-linked files travel as separate files, as the TypeScript client sends them.
                with open(path, "rb") as f:
                    info.size = os.fstat(f.fileno()).st_size
                    tar.addfile(info, f)
                entries += 1
                size += info.size

        st = os.lstat(root)
        add(root, "" if stat.S_ISDIR(st.st_mode) else os.path.basename(os.path.normpath(root)))
    return PackResult(entries, size)
