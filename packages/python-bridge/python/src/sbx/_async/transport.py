"""The asyncio driver: a reader task feeds every message to the core; waiters await a future.

The protocol itself (calls, credit, notifications, exits) is in the sans-I/O core and
``channel.py``; this file only moves messages between it and ``websockets``' asyncio client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from .._core import Watched
from .._endpoint import bound_url, connect_failure, ensure_daemon, resolve_endpoint
from .._errors import ConnectionError
from .channel import AsyncChannel
from .streams import AsyncIncoming

__all__ = ["AsyncConnection"]

_MAX_MESSAGE = 64 << 20


class AsyncConnection(AsyncChannel):
    """One authenticated WebSocket to the daemon; a reader task dispatches what arrives."""

    def __init__(self, ws: ClientConnection, url: str) -> None:
        super().__init__(url)
        self._ws = ws
        # Flushes started from synchronous code, held so the loop does not drop them unfinished.
        self._flushes: set[asyncio.Task[None]] = set()
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def open(cls, url: str | None = None, token: str | None = None, bind: str | None = None) -> AsyncConnection:
        """Connects (starting a local daemon first when no url is configured and none runs); ``bind`` names the one sandbox the connection is about (see ``bound_url``)."""
        endpoint = resolve_endpoint(url, token)
        if endpoint.embedded:
            await asyncio.get_running_loop().run_in_executor(None, ensure_daemon, endpoint)
        resolved = endpoint.resolve_token()
        headers = {"Authorization": f"Bearer {resolved.value}"}
        try:
            ws = await connect(bound_url(endpoint.url, bind), additional_headers=headers, max_size=_MAX_MESSAGE, compression=None, ping_interval=None, open_timeout=30)
        except (OSError, WebSocketException, asyncio.TimeoutError) as err:  # InvalidStatus too: a WebSocketException
            raise connect_failure(endpoint.url, resolved, err) from err
        conn = cls(ws, endpoint.url)
        conn.token = token
        return conn

    async def collect(self, streams: Sequence[AsyncIncoming | None], sinks: Sequence[Callable[[bytes], object] | None] = ()) -> list[bytes | None]:
        """Reads several streams to their end at once (so none stalls the others); a sink receives chunks instead."""

        async def one(s: AsyncIncoming | None, sink: Callable[[bytes], object] | None) -> bytes | None:
            if s is None:
                return None
            parts: list[bytes] = []
            async for chunk in s:
                if sink is None:
                    parts.append(chunk)
                else:
                    sink(chunk)
            return None if sink is not None else b"".join(parts)

        padded = [*sinks, *([None] * (len(streams) - len(sinks)))]
        return list(await asyncio.gather(*(one(s, k) for s, k in zip(streams, padded))))

    # ------------------------------------------------------------ the channel's I/O

    async def _wait(self, what: Watched, timeout: float | None = None) -> None:
        woken = asyncio.get_running_loop().create_future()
        unwatch = what.watch(lambda: None if woken.done() else woken.set_result(None))
        try:
            await asyncio.wait_for(woken, timeout)
        except asyncio.TimeoutError:
            pass  # the caller looks again and sees its deadline passed
        finally:
            unwatch()

    async def _flush(self) -> None:
        # Each message is popped right before send() writes it, so tasks flushing at once keep the queue's order.
        while (message := self._session.next_outgoing()) is not None:
            try:
                await self._ws.send(message)
            except WebSocketException as err:
                self._session.connection_lost(str(err))
                raise ConnectionError(f"connection to {self.url} closed ({err})") from err

    def _flush_soon(self) -> None:
        if self._session.has_outgoing:
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a lost connection already failed every waiter

    async def _read_loop(self) -> None:
        reason = "closed"
        code: int | None = None
        close_reason = ""
        try:
            async for message in self._ws:
                self._session.receive(message)
                self._flush_soon()  # an ABORT the core queued for a stream that overran its window
            reason = f"closed with code {self._ws.close_code}"
            code, close_reason = self._ws.close_code, self._ws.close_reason or ""
        except WebSocketException as err:
            reason = str(err) or type(err).__name__
            if isinstance(err, ConnectionClosed) and err.rcvd is not None:
                code, close_reason = err.rcvd.code, err.rcvd.reason
        except Exception as err:  # a bug in dispatch must not leave calls hanging
            reason = f"{type(err).__name__}: {err}"
        finally:
            self._session.connection_lost(reason, code, close_reason)

    async def close(self) -> None:
        """Closes the connection; pending calls raise ConnectionError."""
        try:
            await self._ws.close()
        except WebSocketException:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), 5)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self._reader.cancel()
        self._session.connection_lost("closed by the client")
