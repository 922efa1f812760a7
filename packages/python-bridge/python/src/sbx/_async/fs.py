# hand-written: the sync flavour in ../_sync/fs.py is generated from this file
"""The sandbox's file system. Paths resolve inside the sandbox (relative ones against /home/sandbox)."""

from __future__ import annotations

import os
import posixpath
import re
import stat as statmod
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .._errors import ResourceLimitError
from .._generated.models import ERROR_CODES, DirEntry, FileInfo
from .._paths import path_spellings
from .._tar import TarSizeLimit, pack_tree, unpack_tar
from .._types import DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_MAX_READ_BYTES, WalkEntry
from .file import AsyncFsFile
from .streams import AsyncIncoming, AsyncOutgoing
from .transport import AsyncConnection

__all__ = ["AsyncSandboxFs"]

FileData = bytes | bytearray | memoryview | str | AsyncIterable[bytes]
_CHUNK = 256 * 1024


class AsyncSandboxFs:
    """``sb.fs``: files move as flow-controlled byte streams, never as base64 in JSON."""

    def __init__(self, conn: AsyncConnection, sandbox: str) -> None:
        self._conn = conn
        self._sandbox = sandbox

    async def read_file_stream(self, path: str) -> AsyncIncoming:
        """A file's contents as an iterable of chunks; returns once the file is open."""
        stream = self._conn.incoming()
        try:
            await self._conn.fs_read_file(sandbox=self._sandbox, path=path, stream=stream.id)
        except BaseException as err:
            stream.fail(err)
            raise
        return stream

    async def read_file(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> bytes:
        """A whole file as bytes, at most ``max_bytes`` (default 256 MiB; more raises ``ResourceLimitError``:
        read bigger files with ``read_file_stream``). FIFOs and devices are refused by the sandbox (EINVAL)."""
        stream = await self.read_file_stream(path)
        parts: list[bytes] = []
        size = 0
        async for chunk in stream:
            size += len(chunk)
            if size > max_bytes:
                await stream.cancel("over the byte limit")
                raise ResourceLimitError(
                    f"{path} holds more than max_bytes ({max_bytes} bytes); read it with read_file_stream, or pass a larger max_bytes",
                    ERROR_CODES["ResourceLimit"],
                )
            parts.append(chunk)
        return b"".join(parts)

    async def read_text_file(self, path: str, *, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> str:
        """A whole file as UTF-8 text, at most ``max_bytes`` (default 256 MiB)."""
        return (await self.read_file(path, max_bytes=max_bytes)).decode("utf-8")

    async def write_file(
        self,
        path: str,
        data: FileData,
        *,
        mode: int | None = None,
        append: bool | None = None,
        create: bool | None = None,
        create_new: bool | None = None,
    ) -> int:
        """Writes bytes, text, or an iterable of chunks to a file, with backpressure; returns the bytes written."""
        _check_data(data)
        stream = self._conn.outgoing()
        call = await self._conn.start_fs_write_file(sandbox=self._sandbox, path=path, stream=stream.id, mode=mode, append=append, create=create, create_new=create_new)
        await _pump(data, stream, call)
        return (await call.result()).bytes_written

    async def write_text_file(self, path: str, text: str, *, mode: int | None = None, append: bool | None = None) -> int:
        """Writes UTF-8 text to a file."""
        return await self.write_file(path, text, mode=mode, append=append)

    async def stat(self, path: str) -> FileInfo:
        """File information, following symlinks."""
        return await self._conn.fs_stat(sandbox=self._sandbox, path=path)

    async def lstat(self, path: str) -> FileInfo:
        """File information about a symlink itself."""
        return await self._conn.fs_lstat(sandbox=self._sandbox, path=path)

    async def exists(self, path: str) -> bool:
        """Whether anything (even a dangling symlink) is at ``path``."""
        from .._errors import RpcError

        try:
            await self.lstat(path)
            return True
        except RpcError as err:
            if err.errno == "ENOENT":
                return False
            raise

    async def read_dir(self, path: str) -> list[DirEntry]:
        """The entries of a directory."""
        return await self._conn.fs_read_dir(sandbox=self._sandbox, path=path)

    async def mkdir(self, path: str, *, recursive: bool | None = None, mode: int | None = None) -> None:
        await self._conn.fs_mkdir(sandbox=self._sandbox, path=path, recursive=recursive, mode=mode)

    async def remove(self, path: str, *, recursive: bool | None = None) -> None:
        """Removes a file, symlink or empty directory; with ``recursive``, a whole tree."""
        await self._conn.fs_remove(sandbox=self._sandbox, path=path, recursive=recursive)

    async def rename(self, from_: str, to: str) -> None:
        await self._conn.fs_rename(sandbox=self._sandbox, from_=from_, to=to)

    async def copy_file(self, from_: str, to: str) -> None:
        await self._conn.fs_copy_file(sandbox=self._sandbox, from_=from_, to=to)

    async def chmod(self, path: str, mode: int) -> None:
        await self._conn.fs_chmod(sandbox=self._sandbox, path=path, mode=mode)

    async def symlink(self, target: str, path: str) -> None:
        """Creates a symlink at ``path`` pointing to ``target``."""
        await self._conn.fs_symlink(sandbox=self._sandbox, target=target, path=path)

    async def read_link(self, path: str) -> str:
        return await self._conn.fs_read_link(sandbox=self._sandbox, path=path)

    async def real_path(self, path: str) -> str:
        return await self._conn.fs_real_path(sandbox=self._sandbox, path=path)

    async def make_temp_dir(self, *, dir: str | None = None, prefix: str | None = None, suffix: str | None = None) -> str:
        """Creates a new uniquely named directory (in /tmp unless ``dir`` is given)."""
        return await self._conn.fs_make_temp_dir(sandbox=self._sandbox, dir=dir, prefix=prefix, suffix=suffix)

    async def open(
        self,
        path: str,
        *,
        read: bool | None = None,
        write: bool | None = None,
        append: bool | None = None,
        truncate: bool | None = None,
        create: bool | None = None,
        create_new: bool | None = None,
        mode: int | None = None,
    ) -> AsyncFsFile:
        """Opens a file as an ``FsFile`` (read-only unless told otherwise), as Deno's ``open``."""
        opened = await self._conn.fs_open(
            sandbox=self._sandbox, path=path, read=read, write=write, append=append, truncate=truncate, create=create, create_new=create_new, mode=mode
        )
        return AsyncFsFile(self._conn, self._sandbox, opened.handle)

    async def create(self, path: str) -> AsyncFsFile:
        """Creates a file (emptying an existing one) and opens it for reading and writing."""
        return await self.open(path, read=True, write=True, create=True, truncate=True)

    async def make_temp_file(self, *, dir: str | None = None, prefix: str | None = None, suffix: str | None = None) -> str:
        """Creates a new uniquely named empty file (in /tmp unless ``dir`` is given)."""
        return await self._conn.fs_make_temp_file(sandbox=self._sandbox, dir=dir, prefix=prefix, suffix=suffix)

    async def link(self, target: str, path: str) -> None:
        """Creates ``path`` as a hard link to ``target``."""
        await self._conn.fs_link(sandbox=self._sandbox, target=target, path=path)

    async def truncate(self, name: str, length: int | None = None) -> None:
        """Truncates (or extends) a file to ``length`` bytes; without it, empties the file."""
        await self._conn.fs_truncate(sandbox=self._sandbox, path=name, len=length)

    async def umask(self, mask: int | None = None) -> int:
        """The umask of later file calls and processes; with ``mask``, sets it. Returns the one before."""
        return await self._conn.fs_umask(sandbox=self._sandbox, mask=mask)

    async def utime(self, path: str, atime: float | datetime, mtime: float | datetime) -> None:
        """Sets access and modification times: datetimes, or seconds since the epoch."""
        await self._conn.fs_utime(sandbox=self._sandbox, path=path, atime=_seconds(atime), mtime=_seconds(mtime))

    async def chown(self, path: str, uid: int | None = None, gid: int | None = None) -> None:
        """Changes owner and group; None leaves one as it is."""
        await self._conn.fs_chown(sandbox=self._sandbox, path=path, uid=uid, gid=gid)

    async def walk(
        self,
        root: str,
        *,
        max_depth: int | None = None,
        include_files: bool = True,
        include_dirs: bool = True,
        include_symlinks: bool = True,
        match: Sequence[str | re.Pattern[str]] | None = None,
        skip: Sequence[str | re.Pattern[str]] | None = None,
    ) -> AsyncIterator[WalkEntry]:
        """Walks a tree depth-first, like Deno's ``walk``: the root first, then every entry below it.

        ``max_depth`` limits how deep it goes (1: the root's own entries); ``match`` keeps only
        entries whose path matches one of the patterns (``re.search``); ``skip`` leaves out, and
        does not descend into, entries whose path matches one. Symlinks are reported, never followed.

        Example::

            async for entry in sb.fs.walk("/home/sandbox/project", skip=["/node_modules$"]):
                if entry.is_file:
                    print(entry.path)
        """
        base = await self.real_path(root)
        matches = _patterns(match)
        if include_dirs and (matches is None or any(r.search(base) for r in matches)):
            yield WalkEntry(path=base, name=posixpath.basename(base) or "/", is_file=False, is_directory=True, is_symlink=False)
        walk = _Walk(max_depth, include_files, include_dirs, include_symlinks, matches, _patterns(skip) or [])
        async for entry in self._walk_below(base, walk, 0):
            yield entry

    async def _walk_below(self, dir: str, walk: _Walk, depth: int) -> AsyncIterator[WalkEntry]:
        if walk.max_depth is not None and depth >= walk.max_depth:
            return
        for e in await self.read_dir(dir):
            path = posixpath.join(dir, e.name)
            if any(r.search(path) for r in walk.skip):
                continue
            wanted = (e.is_file and walk.files) or (e.is_directory and walk.dirs) or (e.is_symlink and walk.symlinks)
            if wanted and (walk.match is None or any(r.search(path) for r in walk.match)):
                yield WalkEntry(path=path, name=e.name, is_file=e.is_file, is_directory=e.is_directory, is_symlink=e.is_symlink)
            if e.is_directory:
                async for entry in self._walk_below(path, walk, depth + 1):
                    yield entry

    async def upload(self, local_path: str | os.PathLike[str], sandbox_path: str) -> None:
        """Copies a local file or directory tree into the sandbox.

        A file keeps its permission bits; a tree travels as one tar stream with its empty
        directories, modes and symlinks (kept as symlinks, never followed); sockets, FIFOs and
        devices are left out.
        """
        st = os.lstat(local_path)
        if statmod.S_ISLNK(st.st_mode):
            await self.symlink(os.readlink(local_path), sandbox_path)
        elif statmod.S_ISREG(st.st_mode):
            with open(local_path, "rb") as f:
                await self.write_file(sandbox_path, _FileChunks(f), mode=st.st_mode & 0o777)
        elif statmod.S_ISDIR(st.st_mode):
            # Packed to a temporary file first: tarfile writes synchronously, the stream waits for credit.
            with tempfile.TemporaryFile() as tar:
                pack_tree(os.fspath(local_path), tar)
                tar.seek(0)
                stream = self._conn.outgoing()
                call = await self._conn.start_fs_upload(sandbox=self._sandbox, path=sandbox_path, stream=stream.id)
                await _pump(_FileChunks(tar), stream, call)
                await call.result()
        else:
            raise ValueError(f"{local_path} is neither a file, a symlink nor a directory")

    async def download(
        self,
        sandbox_path: str,
        local_path: str | os.PathLike[str],
        *,
        symlinks: Literal["refuse", "skip"] = "refuse",
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> None:
        """Copies a sandbox file or tree to the local disk.

        A tree is unpacked into ``local_path`` (created if missing) refusing every entry that
        would land outside it (absolute names, ``..``, writes through symlinks, hard links
        out of the tree, devices and FIFOs raise ``TarEntryError`` and what was unpacked is
        removed again); only permission bits are applied, never ownership or setuid bits.
        A symlink in the tree that leads out of it is refused (``symlinks="skip"`` leaves it
        out); links inside it are kept. A symlink named directly is followed in the sandbox and
        its content copied: no download creates a link that leads out of its target.

        At most ``max_bytes`` (default 10 GiB) of file content is written: each file counts at
        the size the sandbox declares for it (a sparse file at its full apparent size), checked
        before any of its bytes are written or spooled; past it ``ResourceLimitError`` is raised.
        A failed download removes what it had created (files that stood there are left as they
        were: a file downloaded over one replaces it only once all of it arrived) and stops the
        sandbox sending.
        """
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise TypeError(f"download: max_bytes must be a non-negative int number of bytes, not {max_bytes!r}")

        def too_big(path: str, size: int, sofar: int) -> ResourceLimitError:
            after = f" after {sofar} already" if sofar else ""
            return ResourceLimitError(
                f"downloading {sandbox_path} would write more than max_bytes ({max_bytes} bytes): {path} is {size} bytes{after}; "
                "pass a larger max_bytes to download it",
                ERROR_CODES["ResourceLimit"],
            )

        st = await self.stat(sandbox_path)
        if not st.is_directory:
            # Refused before anything is opened on either side; counted again as the bytes come (it may grow).
            if st.size > max_bytes:
                raise too_big(sandbox_path, st.size, 0)
            # The sandbox refuses FIFOs, devices and sockets (EINVAL): only regular files are read.
            body = await self.read_file_stream(sandbox_path)
            # O_NOFOLLOW: never written through a symlink standing at local_path (ELOOP says so instead);
            # O_EXCL first, to know whether this download created the file (and may remove it again).
            flags = os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
            created = True
            # Where the bytes go when a regular file stands at local_path: beside it, renamed over it once all arrived.
            temp: str | None = None
            # What the file written gets at the end: a new one the sandbox file's mode; one replacing
            # a file that file's own mode (as an overwrite in place keeps it); a device or FIFO
            # nothing (as root, /dev/null made 0600 would be everyone's problem).
            mode: int | None = st.mode & 0o777
            try:
                try:
                    fd = os.open(local_path, flags | os.O_CREAT | os.O_EXCL, st.mode & 0o777)
                except FileExistsError:
                    created = False
                    # Opened as before to be refused as before (a symlink, a directory, no permission), but not
                    # truncated; O_NONBLOCK: a FIFO nobody reads is ENXIO, not a wait.
                    fd = os.open(local_path, flags | os.O_NONBLOCK)
                    was = os.fstat(fd).st_mode
                    if statmod.S_ISREG(was):
                        # A file is replaced whole or not at all; a device or FIFO is written in place.
                        # (Not named after the file: a name near NAME_MAX would make it too long.)
                        os.close(fd)
                        temp = os.path.join(os.path.dirname(os.fspath(local_path)), f".sbx-download-{os.urandom(6).hex()}")
                        fd = os.open(temp, flags | os.O_CREAT | os.O_EXCL, 0o600)
                        mode = was & 0o777
                    else:
                        os.set_blocking(fd, True)
                        mode = None
            except BaseException:
                await body.cancel("the local file could not be opened")
                raise
            try:
                with open(fd, "wb") as out:
                    got = 0
                    async for chunk in body:
                        got += len(chunk)
                        if got > max_bytes:
                            raise ResourceLimitError(
                                f"{sandbox_path} grew past max_bytes ({max_bytes} bytes) while it was downloaded; pass a larger max_bytes to download it",
                                ERROR_CODES["ResourceLimit"],
                            )
                        out.write(chunk)
                    if mode is not None:
                        os.fchmod(fd, mode)
                if temp is not None:
                    os.rename(temp, local_path)
            except BaseException:
                # The sandbox stops sending; only what this download created is removed (a file that stood there is untouched).
                await body.cancel("download failed")
                for made in ([temp] if temp is not None else []) + ([os.fspath(local_path)] if created else []):
                    try:
                        os.unlink(made)
                    except OSError:
                        pass
                raise
        else:
            # Spooled to a temporary file, then unpacked: tarfile reads synchronously. The spool
            # holds no more than the limit allows: the headers are checked as the stream comes.
            def entry_too_big(name: str, size: int, sofar: int) -> ResourceLimitError:
                return too_big(posixpath.join(sandbox_path, name), size, sofar)

            limit = TarSizeLimit(max_bytes, entry_too_big)
            with tempfile.TemporaryFile() as tar:

                def spool(chunk: bytes) -> None:
                    limit.feed(chunk)
                    tar.write(chunk)

                stream = self._conn.incoming()
                call = await self._conn.start_fs_download(sandbox=self._sandbox, path=sandbox_path, stream=stream.id)
                try:
                    await self._conn.collect([stream], [spool])
                except BaseException as err:
                    # The sandbox stops sending; its side of the call then fails because we stopped
                    # reading (awaited, unless we are being interrupted, so no answer is left unread).
                    await stream.cancel("download stopped by the client")
                    if isinstance(err, Exception):
                        try:
                            await call.result()
                        except Exception:
                            pass
                    raise
                await call.result()
                tar.seek(0)
                # The limit again, as tarfile reads the sizes (the spool was checked as TarSizeLimit reads them).
                unpack_tar(
                    tar,
                    os.fspath(local_path),
                    outside_links=symlinks,
                    packed_root=path_spellings(await self.real_path(sandbox_path)),
                    max_bytes=max_bytes,
                    too_big=entry_too_big,
                )


def _seconds(t: float | datetime) -> float:
    return t.timestamp() if isinstance(t, datetime) else float(t)


@dataclass(frozen=True)
class _Walk:
    max_depth: int | None
    files: bool
    dirs: bool
    symlinks: bool
    match: list[re.Pattern[str]] | None
    skip: list[re.Pattern[str]]


def _patterns(given: Sequence[str | re.Pattern[str]] | None) -> list[re.Pattern[str]] | None:
    return None if given is None else [re.compile(p) for p in given]


class _FileChunks:
    """A local binary file read in chunks, as the iterable ``write_file`` takes."""

    def __init__(self, f: object) -> None:
        self._f = f

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk: bytes = getattr(self._f, "read")(_CHUNK)
        if not chunk:
            raise StopAsyncIteration
        return chunk


def _check_data(data: object) -> None:
    """Refuses ``data`` write_file cannot send, before anything is opened."""
    if isinstance(data, (str, bytes, bytearray, memoryview)) or hasattr(data, "__aiter__"):
        return
    # unasync: raise TypeError(f"data: expected bytes, str or an iterable of bytes, not {type(data).__name__}")
    raise TypeError(f"data: expected bytes, str or an async iterable of bytes, not {type(data).__name__}")


async def _pump(data: FileData, stream: AsyncOutgoing, call: object) -> None:
    """Feeds ``data`` into ``stream`` and ends it. When the daemon refused the write, its answer is
    the error raised; when ``data`` failed (an iterable that raised, a chunk that is not bytes), the
    caller's own error, once the daemon has discarded the partial write."""
    try:
        if isinstance(data, str):
            await stream.write(data.encode())
        elif isinstance(data, (bytes, bytearray, memoryview)):
            await stream.write(data)
        else:
            async for chunk in data:
                await stream.write(chunk)
        await stream.end()
    except BaseException:
        refused = stream.failed
        await stream.abort()
        if refused:
            await getattr(call, "result")()  # raises the call's own error
        else:
            try:
                await getattr(call, "result")()  # the call ends with the abort just sent
            except Exception:
                pass
        raise
