"""The sync driver: whoever waits pumps the socket, so no event-loop thread is needed.

A caller waiting for a response, a stream chunk, credit or an exit status receives messages
itself and feeds them to the core; chunks for other streams queue up, bounded by flow control
(the daemon may have at most a window uncredited per stream, the core stops a stream that
overruns it, and credit is only granted as the consumer takes bytes). The protocol itself is
in the sans-I/O core and ``channel.py``; this file only moves messages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

from .._core import Watched
from .._endpoint import bound_url, connect_failure, ensure_daemon, resolve_endpoint
from .._errors import ConnectionError
from .channel import Channel
from .streams import Incoming

__all__ = ["Connection"]

_MAX_MESSAGE = 64 << 20


class Connection(Channel):
    """One authenticated WebSocket to the daemon, driven by whichever call is waiting."""

    def __init__(self, ws: ClientConnection, url: str) -> None:
        super().__init__(url)
        self._ws = ws
        # One thread at a time receives; others wanting to wait take turns.
        self._recv_lock = threading.RLock()
        # The core's queue is shared: popping and sending under one lock keeps its order across threads.
        self._send_lock = threading.RLock()

    @classmethod
    def open(cls, url: str | None = None, token: str | None = None, bind: str | None = None) -> Connection:
        """Connects (starting a local daemon first when no url is configured and none runs); ``bind`` names the one sandbox the connection is about (see ``bound_url``)."""
        endpoint = resolve_endpoint(url, token)
        if endpoint.embedded:
            ensure_daemon(endpoint)
        resolved = endpoint.resolve_token()
        headers = {"Authorization": f"Bearer {resolved.value}"}
        try:
            # Entering marks the connection as managed (websockets >= 17 warns otherwise); close() ends it.
            ws = connect(bound_url(endpoint.url, bind), additional_headers=headers, max_size=_MAX_MESSAGE, compression=None, open_timeout=30).__enter__()
        except (OSError, WebSocketException, TimeoutError) as err:  # InvalidStatus too: a WebSocketException
            raise connect_failure(endpoint.url, resolved, err) from err
        conn = cls(ws, endpoint.url)
        conn.token = token
        return conn

    def collect(self, streams: Sequence[Incoming | None], sinks: Sequence[Callable[[bytes], object] | None] = ()) -> list[bytes | None]:
        """Reads several streams to their end at once (so none stalls the others); a sink receives chunks instead."""
        padded = [*sinks, *([None] * (len(streams) - len(sinks)))]
        parts: list[list[bytes]] = [[] for _ in streams]
        live = [i for i, s in enumerate(streams) if s is not None]
        while live:
            progressed = False
            for i in list(live):
                s = streams[i]
                assert s is not None
                while True:
                    chunk = s.take()
                    if chunk is None:
                        break
                    progressed = True
                    if not chunk:
                        live.remove(i)
                        break
                    sink = padded[i]
                    if sink is None:
                        parts[i].append(chunk)
                    else:
                        sink(chunk)
            if live and not progressed:
                self._pump()
        return [None if s is None or padded[i] is not None else b"".join(parts[i]) for i, s in enumerate(streams)]

    # ------------------------------------------------------------ the channel's I/O

    def _wait(self, what: Watched, timeout: float | None = None) -> None:
        self._pump(timeout)  # whatever arrives may be what the caller waits for: it looks again

    def _flush(self) -> None:
        with self._send_lock:
            while (message := self._session.next_outgoing()) is not None:
                try:
                    self._ws.send(message)
                except (WebSocketException, OSError) as err:
                    self._session.connection_lost(str(err))
                    raise ConnectionError(f"connection to {self.url} closed ({err})") from err

    def _flush_soon(self) -> None:
        if not self._session.has_outgoing:
            return  # the common case, without taking the send lock
        try:
            self._flush()
        except ConnectionError:
            pass  # the streams already fail with the connection

    def _pump(self, timeout: float | None = None) -> None:
        """Receives and dispatches one message (or returns after ``timeout`` seconds without one);
        raises nothing, a lost connection fails every waiter."""
        if self.closed:
            return
        if not self._recv_lock.acquire(timeout=-1 if timeout is None else timeout):
            return  # another thread receives; the caller looks again
        try:
            try:
                message = self._ws.recv(timeout=timeout)
            except TimeoutError:
                return
            except WebSocketException as err:
                rcvd = err.rcvd if isinstance(err, ConnectionClosed) else None
                self._session.connection_lost(str(err) or type(err).__name__, rcvd.code if rcvd else None, rcvd.reason if rcvd else "")
                return
            except (OSError, RuntimeError) as err:
                self._session.connection_lost(f"{type(err).__name__}: {err}")
                return
        finally:
            self._recv_lock.release()
        self._session.receive(message)
        self._flush_soon()  # an ABORT the core queued for a stream that overran its window

    def close(self) -> None:
        """Closes the connection; pending calls raise ConnectionError."""
        try:
            self._ws.close()
        except (WebSocketException, OSError):
            pass
        self._session.connection_lost("closed by the client")
