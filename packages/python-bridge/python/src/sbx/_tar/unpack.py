"""Unpacks a tar archive without ever writing outside the target directory (after
packages/client/src/tar/unpack.ts)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import posixpath
from collections.abc import Callable, Sequence
from typing import IO, Literal, NamedTuple

from .names import TarEntryError, entry_parts

__all__ = ["UnpackResult", "unpack_tar"]

_CHUNK = 256 * 1024
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_TYPE_NAMES = {tarfile.CHRTYPE: "character-device", tarfile.BLKTYPE: "block-device", tarfile.FIFOTYPE: "fifo"}


class UnpackResult(NamedTuple):
    entries: int
    bytes: int


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _first_missing(path: str) -> str | None:
    """The topmost directory ``os.makedirs(path)`` would create, if any."""
    made = None
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        made = p
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return made


def _remove(path: str) -> None:
    st = _lstat(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def _check_end(source: IO[bytes], offset: int) -> None:
    # tarfile takes a truncated or garbled header after the first entry for the end of the
    # archive; only a zero block there is a real end.
    source.seek(offset)
    block = source.read(tarfile.BLOCKSIZE)
    if len(block) != tarfile.BLOCKSIZE or block.count(0) != tarfile.BLOCKSIZE:
        raise tarfile.ReadError("unexpected end of data: the archive has no end-of-archive marker where it stops")


def _set_mtime(target: int | str, mtime: float) -> None:
    # A timestamp the file system cannot hold is not worth failing the whole unpack for.
    try:
        os.utime(target, (mtime, mtime))
    except (OSError, OverflowError, ValueError):
        pass


def unpack_tar(
    source: IO[bytes],
    dest: str,
    *,
    max_entries: int = 1_000_000,
    outside_links: Literal["keep", "refuse", "skip"] = "keep",
    packed_root: str | Sequence[str] | None = None,
    max_bytes: int | None = None,
    too_big: Callable[[str, int, int], BaseException] | None = None,
) -> UnpackResult:
    """Unpacks the tar archive in ``source`` (a seekable binary file, read from where it stands)
    into ``dest`` (created if missing) without ever writing outside it.

    Absolute names, ``..``, writes through symlinks, hard links leaving the tree, device nodes
    and FIFOs are refused with ``TarEntryError``; symlinks are recreated as symlinks, never
    followed; only permission bits are applied (no setuid, setgid, sticky bit or ownership).
    An archive that ends early raises ``tarfile.ReadError``. On any error, what this call
    created is removed again before the error is raised.

    ``outside_links``: symlinks that are absolute or climb out of ``dest`` are kept (an upload
    into a sandbox), refused (a download onto your machine) or skipped; ``packed_root`` is where
    the tree lived where it was packed (each name it has there), so an absolute link into it is
    rewritten relative.

    ``max_bytes``: stop before writing a file whose declared size would take the files' total
    past it (raising ``too_big(name, size, so_far)``, by default a ``TarEntryError``).
    """
    created: list[str] = []
    dir_times: list[tuple[str, float]] = []
    entries = 0
    written = 0
    declared = 0

    def parent_of(name: str, parts: list[str]) -> str:
        # Every directory written into must be a real directory reached without symlinks.
        d = dest
        for part in parts[:-1]:
            d = os.path.join(d, part)
            st = _lstat(d)
            if st is None:
                os.mkdir(d, 0o755)
                created.append(d)
            elif stat.S_ISLNK(st.st_mode):
                raise TarEntryError(name, f"'{part}' is a symlink; refusing to write through it")
            elif not stat.S_ISDIR(st.st_mode):
                raise TarEntryError(name, f"'{part}' is not a directory")
        return d

    def clear_for_replace(name: str, path: str) -> None:
        st = _lstat(path)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            raise TarEntryError(name, "a directory already stands there")
        os.unlink(path)

    made_dest = _first_missing(dest)
    os.makedirs(dest, exist_ok=True)
    if not stat.S_ISDIR(os.lstat(dest).st_mode):
        raise NotADirectoryError(errno.ENOTDIR, f"'{dest}' is not a directory", dest)
    try:
        archive = tarfile.open(fileobj=source, mode="r:")
        for member in archive:
            name = member.name
            entries += 1
            if entries > max_entries:
                raise TarEntryError(name, f"archive has more than {max_entries} entries")
            parts = entry_parts(name)
            mode = member.mode & 0o777
            if not parts:
                if not member.isdir():
                    raise TarEntryError(name, "names the target directory itself")
                continue
            path = os.path.join(parent_of(name, parts), parts[-1])
            if member.type == tarfile.DIRTYPE:
                st = _lstat(path)
                if st is None:
                    os.mkdir(path, mode | 0o700)
                    created.append(path)
                elif not stat.S_ISDIR(st.st_mode):
                    raise TarEntryError(name, "something other than a directory already stands there")
                os.chmod(path, mode | 0o700)
                dir_times.append((path, member.mtime))
            elif member.type in _FILE_TYPES:
                if max_bytes is not None and declared + member.size > max_bytes:
                    if too_big is not None:
                        raise too_big(name, member.size, declared)
                    raise TarEntryError(name, f"declares {member.size} bytes, which would take the archive past {max_bytes} bytes")
                declared += member.size
                clear_for_replace(name, path)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
                created.append(path)
                with open(fd, "wb") as out:
                    src = archive.extractfile(member)
                    if src is not None:
                        while chunk := src.read(_CHUNK):
                            out.write(chunk)
                            written += len(chunk)
                    out.flush()
                    os.fchmod(fd, mode)
                    _set_mtime(fd, member.mtime)
            elif member.type == tarfile.SYMTYPE:
                if not member.linkname:
                    raise TarEntryError(name, "symlink without a target")
                if "\0" in member.linkname:
                    raise TarEntryError(name, "symlink target contains a NUL byte")
                link = _link_target(name, parts, member.linkname, outside_links, packed_root)
                if link is not None:
                    clear_for_replace(name, path)
                    os.symlink(link, path)
                    created.append(path)
            elif member.type == tarfile.LNKTYPE:
                target_parts = entry_parts(member.linkname)
                if not target_parts:
                    raise TarEntryError(name, "hardlink without a target")
                target = os.path.join(parent_of(name, target_parts), target_parts[-1])
                st = _lstat(target)
                if st is None or not stat.S_ISREG(st.st_mode):
                    raise TarEntryError(name, f"hardlink target '{member.linkname}' is not a file unpacked into the target directory")
                clear_for_replace(name, path)
                os.link(target, path, follow_symlinks=False)
                created.append(path)
            else:
                kind = f"a {_TYPE_NAMES[member.type]}" if member.type in _TYPE_NAMES else f"of type {member.type!r}"
                raise TarEntryError(name, f"is {kind}; only files, directories, symlinks and hardlinks are allowed")
        _check_end(source, archive.offset)
        for path, mtime in reversed(dir_times):
            _set_mtime(path, mtime)
        return UnpackResult(entries, written)
    except BaseException:
        for path in reversed(created):
            _remove(path)
        if made_dest is not None:
            shutil.rmtree(made_dest, ignore_errors=True)
        raise


def _link_target(name: str, parts: list[str], linkname: str, policy: str, packed_root: str | Sequence[str] | None) -> str | None:
    """The target to give a symlink entry at ``parts``, or None to leave it out. Unless outside
    links are kept, a link may only point inside the tree: relative, as some ``../`` (no more than
    its own depth) then names only (a ``..`` after a name could climb out through another link),
    or absolute into ``packed_root`` (rewritten as such a relative link)."""
    if policy == "keep":
        return linkname
    target = linkname
    roots = [packed_root] if isinstance(packed_root, str) else list(packed_root or ())
    root = next((r for r in (r.rstrip("/") for r in roots) if r and (target == r or target.startswith(r + "/"))), None)
    if root and target.startswith("/"):
        here = posixpath.join("/", *parts[:-1])
        target = posixpath.relpath(posixpath.join("/", posixpath.relpath(target, root)), here)
    if not target.startswith("/"):
        steps = [p for p in target.split("/") if p not in ("", ".")]
        climbs = next((i for i, p in enumerate(steps) if p != ".."), len(steps))
        if climbs <= len(parts) - 1 and ".." not in steps[climbs:]:
            return target
    if policy == "skip":
        return None
    raise TarEntryError(
        name,
        f"is a symlink to '{linkname[:512]}', outside what is being unpacked; a download never creates a link "
        'that leads out of its target (pass symlinks="skip" to leave such links out)',
    )
