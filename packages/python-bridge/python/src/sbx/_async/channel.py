# hand-written: the sync flavour in ../_sync/channel.py is generated from this file
"""The protocol over one connection: calls, streams, notifications and exits, on the sans-I/O core.

A driver subclass (``transport.py``) owns the socket and supplies the three ways it does I/O:
``_wait`` for a change, ``_flush`` what the core queued, and ``_flush_soon`` from code that
cannot wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core import PendingCall, Session, Watched
from .._generated.methods import AsyncMethods
from .._generated.models import ExitStatus
from .streams import AsyncIncoming, AsyncOutgoing

__all__ = ["AsyncChannel", "AsyncCall"]


class AsyncCall:
    """A request under way; ``result()`` waits for its answer."""

    def __init__(self, conn: AsyncChannel, state: PendingCall) -> None:
        self._conn = conn
        self._state = state

    async def result(self) -> Any:
        """The call's result; raises the error it was answered with (ConnectionError if the connection died)."""
        while not self._state.done:
            await self._conn._wait(self._state)
        return self._state.result()


class AsyncChannel(AsyncMethods):
    """Every protocol method over one connection; subclasses supply the I/O."""

    def __init__(self, url: str) -> None:
        #: The daemon's WebSocket URL.
        self.url = url
        #: The token this connection was opened with when one was given (None: from the environment),
        #: for the connections made later on its behalf.
        self.token: str | None = None
        self._session = Session(url)

    @property
    def closed(self) -> bool:
        """Whether the connection is gone (every call raises ConnectionError)."""
        return self._session.closed_with is not None

    # ------------------------------------------------------------ calls

    async def _start(self, method: str, params: dict[str, Any], streams: tuple[int, ...] = ()) -> AsyncCall:
        call = self._session.request(method, params, streams)
        await self._flush()
        return AsyncCall(self, call)

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        call = await self._start(method, params)
        return await call.result()

    # ------------------------------------------------------------ streams

    def incoming(self) -> AsyncIncoming:
        """A new stream for the daemon to write; pass its ``id`` in a call's params."""
        return AsyncIncoming(self, self._session.inbound())

    def outgoing(self) -> AsyncOutgoing:
        """A new stream for us to write; pass its ``id`` in a call's params."""
        return AsyncOutgoing(self, self._session.outbound())

    # ------------------------------------------------------------ notifications

    def on(self, method: str, listener: Callable[[Any], None]) -> Callable[[], None]:
        """Calls ``listener`` with the decoded params of each ``method`` notification."""
        return self._session.on(method, listener)

    async def wait_exit(self, sandbox: str, pid: int) -> ExitStatus:
        """The exit status of a process, once its process.exit notification arrived."""
        while True:
            status = self._session.exit_status(sandbox, pid)
            if status is not None:
                return status
            await self._wait(self._session)

    def forget_sandbox(self, sandbox: str) -> None:
        """Marks a sandbox as gone: waits for its processes return KILLED."""
        self._session.forget_sandbox(sandbox)

    # ------------------------------------------------------------ what a driver supplies

    async def _wait(self, what: Watched, timeout: float | None = None) -> None:
        """Returns once ``what`` may have changed, the connection was lost, or ``timeout`` seconds passed."""
        raise NotImplementedError

    async def _flush(self) -> None:
        """Sends every message the core queued; raises ConnectionError when the connection fails."""
        raise NotImplementedError

    def _flush_soon(self) -> None:
        """Sends what the core queued from code that cannot wait (credit as chunks are taken); never raises."""
        raise NotImplementedError
