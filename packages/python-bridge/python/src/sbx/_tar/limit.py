"""Counts, as a tar stream arrives, the sizes its headers declare for the files in it, and stops
it before a file's bytes would take the total past a limit (the Python twin of unpackTar's
``maxBytes`` in packages/client/src/tar/unpack.ts). It reads only headers: what it passes on is
the stream itself, so a spool or unpacker behind it never sees more than the limit allows."""

from __future__ import annotations

import tarfile
from collections.abc import Callable

from .names import TarEntryError

__all__ = ["TarSizeLimit"]

_BLOCK = tarfile.BLOCKSIZE
# Pax headers only carry names, link targets and the like: one bigger than this is no archive sbx wrote.
_MAX_PAX = 1 << 20
# The entry types whose data follows their header, as tarfile reads them (its SUPPORTED_TYPES hold
# no data but files; anything it does not know it skips by its size).
_NO_DATA = {tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE}


def _size(field: bytes) -> int:
    """Octal, or base-256 (first byte 0x80, as GNU tar and sbx's daemon write sizes of 8 GiB and
    more), read as tarfile reads it; a negative base-256 number (0xff) is no size."""
    if field[0] == 0x80:
        return int.from_bytes(field[1:], "big")
    if field[0] == 0xFF:
        raise ValueError("a negative size")
    text = field.split(b"\0", 1)[0].strip(b" ")
    return int(text, 8) if text else 0


class TarSizeLimit:
    """Feed it the tar stream's chunks in order: ``feed`` raises ``too_big(name, size, sofar)``
    once a file's declared size would take the files' total past ``max_bytes``."""

    def __init__(self, max_bytes: int, too_big: Callable[[str, int, int], BaseException]) -> None:
        self.max_bytes = max_bytes
        self.declared = 0
        self._too_big = too_big
        self._header = bytearray()
        self._skip = 0  # data bytes (with padding) still to pass before the next header
        self._pax: bytearray | None = None  # an extended header's records, while they arrive
        self._pax_left = 0
        self._pax_kind = b""
        self._next: dict[str, str] = {}  # the records of the pax header before this entry

    def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            if self._pax is not None:
                n = min(self._pax_left, len(view))
                self._pax += view[:n]
                self._pax_left -= n
                view = view[n:]
                if self._pax_left == 0:
                    data = bytes(self._pax)
                    if self._pax_kind == tarfile.GNUTYPE_LONGNAME:
                        self._next["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                    elif self._pax_kind in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
                        self._next.update(_records(data))
                    self._pax = None
                continue
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
                continue
            n = min(_BLOCK - len(self._header), len(view))
            self._header += view[:n]
            view = view[n:]
            if len(self._header) == _BLOCK:
                block = bytes(self._header)
                self._header.clear()
                self._entry(block)

    def _entry(self, block: bytes) -> None:
        if block.count(0) == _BLOCK:
            return  # the end-of-archive marker (what follows is the unpacker's business)
        kind = block[156:157]
        try:
            size = _size(block[124:136])
        except ValueError as err:
            raise tarfile.ReadError(f"a tar header with an unreadable size ({err})") from err
        padded = -(-size // _BLOCK) * _BLOCK
        if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            # Records (or a GNU long name) for the entry that follows: read whole, then the padding passed.
            if size > _MAX_PAX:
                raise TarEntryError("PaxHeader", f"an extended header of {size} bytes (more than {_MAX_PAX})")
            self._pax = bytearray()
            self._pax_kind = kind
            self._pax_left = size
            self._skip = padded - size
            return
        pax, self._next = self._next, {}
        if kind in _NO_DATA:
            return
        # A regular file (or a type tarfile skips by its size): a pax "size" is what it really holds.
        if "size" in pax:
            try:
                size = int(pax["size"])
                if size < 0:
                    raise ValueError(pax["size"])
            except ValueError as err:
                raise tarfile.ReadError(f"a pax size record that is no number ({pax['size'][:40]!r})") from err
            padded = -(-size // _BLOCK) * _BLOCK
        name = pax.get("path")
        if name is None:
            # ustar splits a long name into a prefix and a name; GNU's header keeps other fields there.
            prefix = block[345:500].split(b"\0", 1)[0] if block[257:263] == b"ustar\0" else b""
            short = block[0:100].split(b"\0", 1)[0]
            name = (prefix + b"/" + short if prefix else short).decode("utf-8", "surrogateescape")
        if self.declared + size > self.max_bytes:
            raise self._too_big(name, size, self.declared)
        self.declared += size
        self._skip = padded


def _records(data: bytes) -> dict[str, str]:
    """The "length key=value\\n" records of a pax header (those it cannot read are left out)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[space + 1 : pos + length]
        pos += length
        key, eq, value = record.rstrip(b"\n").partition(b"=")
        if eq:
            out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return out
