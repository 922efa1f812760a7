"""Local-disk side of upload/download of directory trees (tar, names relative to the root)."""

from __future__ import annotations

import os
import stat
import tarfile
from typing import IO

__all__ = ["pack_tree", "extract_tar"]


def pack_tree(root: str, out: IO[bytes]) -> None:
    """Writes the tree at ``root`` as a tar archive; symlinks stay symlinks, other special files are left out."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                arc = name if rel == "." else f"{rel}/{name}"
                st = os.lstat(full)
                if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    info = tar.gettarinfo(full, arcname=arc)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    if info.isfile():
                        with open(full, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)


def extract_tar(archive: tarfile.TarFile, dest: str) -> None:
    """Extracts into ``dest``, refusing any entry that would land outside it (absolute, ``..``, links out)."""
    os.makedirs(dest, exist_ok=True)
    base = os.path.realpath(dest)
    for member in archive:
        target = os.path.realpath(os.path.join(base, member.name))
        if target != base and not target.startswith(base + os.sep):
            raise ValueError(f"refusing tar entry outside {dest}: {member.name}")
        if member.issym() or member.islnk():
            link = member.linkname if member.issym() else os.path.join(base, member.linkname)
            resolved = os.path.realpath(os.path.join(os.path.dirname(target), link))
            if member.islnk() and not resolved.startswith(base + os.sep):
                raise ValueError(f"refusing hard link outside {dest}: {member.name}")
        if member.isdir():
            os.makedirs(target, exist_ok=True)
        elif member.isfile():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = archive.extractfile(member)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), member.mode & 0o777)
            with open(fd, "wb") as f:
                if src is not None:
                    while chunk := src.read(256 * 1024):
                        f.write(chunk)
        elif member.issym():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(member.linkname, os.path.join(base, member.name))
        # hard links, devices and FIFOs are not recreated
