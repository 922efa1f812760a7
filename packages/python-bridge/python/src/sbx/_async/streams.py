# hand-written: the sync flavour in ../_sync/streams.py is generated from this file
"""Byte streams of one connection, over the core's credit accounting (``_core/streams.py``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._core import InboundStream, OutboundStream

if TYPE_CHECKING:
    from .channel import AsyncChannel

__all__ = ["AsyncIncoming", "AsyncOutgoing"]


class AsyncIncoming:
    """Bytes the daemon sends us; reading grants credit back. Iterate it for chunks."""

    def __init__(self, conn: AsyncChannel, state: InboundStream) -> None:
        #: The stream's id, as a call's params name it.
        self.id = state.id
        self._conn = conn
        self._state = state

    def take(self) -> bytes | None:
        """A queued chunk (crediting it), b"" at the end, None when nothing is there yet."""
        chunk = self._state.take()
        self._conn._flush_soon()
        return chunk

    def fail(self, err: BaseException) -> None:
        """Ends the stream with ``err``: reading raises it once the queued chunks are read."""
        self._state.fail(err)

    async def read(self) -> bytes:
        """The next chunk, or b"" at the end of the stream."""
        while True:
            chunk = self.take()
            if chunk is not None:
                return chunk
            await self._conn._wait(self._state)

    async def read_within(self, timeout: float | None) -> bytes | None:
        """The next chunk, b"" at the end of the stream, or None if none came within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            chunk = self.take()
            if chunk is not None:
                return chunk
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            await self._conn._wait(self._state, remaining)

    async def cancel(self, reason: str = "cancelled by the reader") -> None:
        """Stops the stream; the daemon stops sending."""
        self._state.cancel(reason)
        await self._conn._flush()

    def __aiter__(self) -> AsyncIncoming:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk


class AsyncOutgoing:
    """Bytes we send to the daemon; writing waits for credit once a window is in flight."""

    def __init__(self, conn: AsyncChannel, state: OutboundStream) -> None:
        #: The stream's id, as a call's params name it.
        self.id = state.id
        self._conn = conn
        self._state = state

    def fail(self, err: BaseException) -> None:
        """Fails the stream: writing raises ``err``."""
        self._state.fail(err)

    @property
    def failed(self) -> bool:
        """Whether the stream failed (the daemon stopped it, or the connection went): writing raises its error."""
        return self._state.error is not None

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Sends ``data``, waiting for credit whenever a whole window is in flight."""
        view = memoryview(data).cast("B")
        off = 0
        while off < len(view):
            while self._state.blocked:
                await self._conn._wait(self._state)
            off += self._state.write_some(view[off:])
            await self._conn._flush()

    async def end(self) -> None:
        """Sends end-of-stream (EOF for a process's stdin)."""
        self._state.end()
        await self._conn._flush()

    async def abort(self, reason: str = "aborted by the writer") -> None:
        """Stops the stream without ending it cleanly (the daemon discards the partial write)."""
        self._state.abort(reason)
        await self._conn._flush()
