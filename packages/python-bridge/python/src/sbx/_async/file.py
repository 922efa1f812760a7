"""``FsFile``: a file opened in the sandbox with ``sb.fs.open`` or ``sb.fs.create``, as Deno's
Python SDK has it (``read(size)`` returns bytes). Only the connection that opened it may use it,
and it closes when that connection does; bytes travel on flow-controlled streams."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Literal, cast

from .._errors import ConnectionError, SandboxNotFoundError
from .._generated.models import FileInfo
from .transport import AsyncConnection

#: The most bytes one read asks the sandbox for (the protocol's bound).
MAX_FILE_READ = 1 << 20


def _seconds(t: float | datetime) -> float:
    return t.timestamp() if isinstance(t, datetime) else float(t)


class AsyncFsFile:
    """An open file in the sandbox; close it (or use it as a context manager): a sandbox holds at most 256."""

    def __init__(self, conn: AsyncConnection, sandbox: str, handle: int) -> None:
        self._conn = conn
        self._sandbox = sandbox
        self._handle = handle
        self._closed = False

    async def read(self, size: int = MAX_FILE_READ) -> bytes:
        """Up to ``size`` bytes from the position (at most 1 MiB a call); b"" at the end of the file."""
        if size <= 0:
            return b""
        stream = self._conn.incoming()
        try:
            await self._conn.fs_file_read(sandbox=self._sandbox, handle=self._handle, length=min(size, MAX_FILE_READ), stream=stream.id)
        except BaseException as err:
            stream.fail(err)
            raise
        return b"".join([chunk async for chunk in stream])

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        """Writes all of ``data`` at the position; returns the bytes written."""
        stream = self._conn.outgoing()
        call = await self._conn.start_fs_file_write(sandbox=self._sandbox, handle=self._handle, stream=stream.id)
        try:
            await stream.write(data)
            await stream.end()
        except BaseException:
            await stream.abort()
            await call.result()  # raises the call's own error when it failed
            raise
        return (await call.result()).bytes_written

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Moves the position (whence 0: from the start, 1: from here, 2: from the end); returns the new one."""
        if whence not in (0, 1, 2):
            raise ValueError(f"whence must be 0 (start), 1 (current) or 2 (end), got {whence!r}")
        mode = cast(Literal[0, 1, 2], whence)
        return (await self._conn.fs_file_seek(sandbox=self._sandbox, handle=self._handle, offset=offset, whence=mode)).position

    async def stat(self) -> FileInfo:
        return await self._conn.fs_file_stat(sandbox=self._sandbox, handle=self._handle)

    async def truncate(self, size: int | None = None) -> None:
        """Truncates (or extends) the file to ``size`` bytes; without it, empties the file."""
        await self._conn.fs_file_truncate(sandbox=self._sandbox, handle=self._handle, len=size)

    async def sync(self) -> None:
        await self._conn.fs_file_sync(sandbox=self._sandbox, handle=self._handle)

    async def sync_data(self) -> None:
        await self._conn.fs_file_sync(sandbox=self._sandbox, handle=self._handle, data_only=True)

    async def utime(self, atime: float | datetime, mtime: float | datetime) -> None:
        """Sets access and modification times: datetimes, or seconds since the epoch."""
        await self._conn.fs_file_utime(sandbox=self._sandbox, handle=self._handle, atime=_seconds(atime), mtime=_seconds(mtime))

    async def lock(self, exclusive: bool = False) -> None:
        """Takes an advisory lock without waiting: ``RpcError`` with errno EAGAIN while another holds a conflicting one."""
        await self._conn.fs_file_lock(sandbox=self._sandbox, handle=self._handle, exclusive=exclusive)

    async def unlock(self) -> None:
        await self._conn.fs_file_unlock(sandbox=self._sandbox, handle=self._handle)

    async def close(self) -> None:
        """Closes the file; again, or once its connection or sandbox is gone (that closed it), does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._conn.fs_file_close(sandbox=self._sandbox, handle=self._handle)
        except (ConnectionError, SandboxNotFoundError):
            pass

    async def __aenter__(self) -> AsyncFsFile:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

