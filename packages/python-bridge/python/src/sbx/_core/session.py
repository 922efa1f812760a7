"""One connection's protocol state, fed messages and asked what to send: no I/O of its own."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from .. import _frames as F
from .._errors import ConnectionError, SandboxError, from_rpc_error
from .._generated.models import ERROR_CODES, HOST_LOST_CLOSE, ExitStatus, ProcessExitNotification, SandboxExitNotification
from .calls import PendingCall
from .exits import Exits
from .streams import InboundStream, OutboundStream
from .watch import Watched

__all__ = ["Session"]

_HOST_LOST_PREFIX = "host lost: "


class Session(Watched):
    """Pending calls, stream tables, notifications and exits of one connection.

    A driver passes every received message to :meth:`receive`, sends what
    :meth:`next_outgoing` hands it, and calls :meth:`connection_lost` once the socket is gone.
    Watchers of the session hear of exits, stopped sandboxes and the loss of the connection.
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        #: The daemon's URL, for error messages.
        self.url = url
        #: Why the connection is gone, or None while it is open.
        self.closed_with: str | None = None
        self._next_id = 1
        self._next_stream = 1
        self._calls: dict[int, PendingCall] = {}
        self._streams: dict[int, InboundStream | OutboundStream] = {}
        self._listeners: dict[str, list[Callable[[Any], None]]] = {}
        self._outbox: deque[str | bytes] = deque()
        self._exits = Exits()

    # ------------------------------------------------------------ sending

    @property
    def has_outgoing(self) -> bool:
        """Whether messages wait to be sent."""
        return bool(self._outbox)

    def next_outgoing(self) -> str | bytes | None:
        """The next message to send (text for JSON-RPC, bytes for a frame), in the order queued."""
        return self._outbox.popleft() if self._outbox else None

    def _queue(self, message: str | bytes) -> None:
        if self.closed_with is None:
            self._outbox.append(message)

    # ------------------------------------------------------------ calls

    def request(self, method: str, params: dict[str, Any], streams: tuple[int, ...] = ()) -> PendingCall:
        """Queues a JSON-RPC request; the call is answered once its response is received."""
        if self.closed_with is not None:
            raise ConnectionError(f"connection to {self.url} is closed ({self.closed_with}); cannot call {method}")
        call = PendingCall(self._next_id, streams, method)
        self._next_id += 1
        self._calls[call.id] = call
        self._queue(json.dumps({"jsonrpc": "2.0", "id": call.id, "method": method, "params": params}))
        return call

    # ------------------------------------------------------------ streams

    def inbound(self) -> InboundStream:
        """A new stream for the daemon to write (its id goes in a call's params)."""
        s = InboundStream(self._stream_id(), self._queue, self._drop_stream)
        self._add_stream(s)
        return s

    def outbound(self) -> OutboundStream:
        """A new stream for us to write."""
        s = OutboundStream(self._stream_id(), self._queue, self._drop_stream)
        self._add_stream(s)
        return s

    def _stream_id(self) -> int:
        sid = self._next_stream
        self._next_stream += 1
        return sid

    def _add_stream(self, s: InboundStream | OutboundStream) -> None:
        if self.closed_with is not None:
            s.fail(ConnectionError(f"connection to {self.url} closed ({self.closed_with})"))  # no frame will ever come
        else:
            self._streams[s.id] = s

    def _drop_stream(self, sid: int) -> None:
        self._streams.pop(sid, None)

    # ------------------------------------------------------------ notifications

    def on(self, method: str, listener: Callable[[Any], None]) -> Callable[[], None]:
        """Calls ``listener`` with the decoded params of each ``method`` notification; returns the unsubscriber."""
        self._listeners.setdefault(method, []).append(listener)
        return lambda: self._listeners.get(method, []).remove(listener)

    def exit_status(self, sandbox: str, pid: int) -> ExitStatus | None:
        """The process's exit status once announced (KILLED if its sandbox went away), None while it runs."""
        status = self._exits.take(sandbox, pid)
        if status is not None:
            return status
        if self.closed_with is not None:
            raise ConnectionError(f"lost the connection before process {pid} exited ({self.closed_with})")
        return None

    def forget_sandbox(self, sandbox: str) -> None:
        """Marks a sandbox as gone (we killed it): waits for its processes end with KILLED."""
        self._exits.stopped(sandbox)
        self._changed()

    # ------------------------------------------------------------ receiving

    def receive(self, message: str | bytes) -> None:
        """Dispatches one WebSocket message: a response, a notification or a stream frame."""
        if isinstance(message, bytes):
            self._on_binary(message)
        else:
            self._on_text(message)

    def _on_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        if isinstance(msg.get("method"), str) and "id" not in msg:
            self._on_notification(msg["method"], msg.get("params"))
            return
        call_id = msg.get("id")
        if not isinstance(call_id, int):
            return
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        if "error" in msg:
            err = from_rpc_error(msg["error"])
            for sid in call.streams:
                s = self._streams.get(sid)
                if s is not None:
                    s.fail(err)
            call.reject(err)
        else:
            call.resolve(msg.get("result"))

    def _on_notification(self, method: str, params: Any) -> None:
        try:
            if method == "process.exit":
                n = ProcessExitNotification.from_wire(params)
                self._exits.exited(n.sandbox, n.pid, n.status)
                decoded: Any = n
            elif method == "sandbox.exit":
                decoded = SandboxExitNotification.from_wire(params)
                self._exits.stopped(decoded.id)
            else:
                decoded = params
        except (KeyError, TypeError, AttributeError):
            return  # malformed: dropped, like a malformed frame
        self._changed()
        for listener in list(self._listeners.get(method, [])):
            listener(decoded)

    def _on_binary(self, data: bytes) -> None:
        frame = F.decode(data)
        if frame is None:
            return
        op, sid, payload = frame
        s = self._streams.get(sid)
        if s is not None:
            s.frame(op, payload)

    def connection_lost(self, reason: str, code: int | None = None, close_reason: str = "") -> None:
        """The socket is gone: every pending call raises ConnectionError, every stream fails, nothing more is sent.

        A gateway that lost the host of a bound connection's sandbox closes it with code 4001 and
        a reason "host lost: ..." (after a sandbox.exit): calls then raise UnavailableError
        "host lost during <method>: ..." and streams "stream aborted: host lost: ...", the words the
        gateway uses for connections it does not relay.
        """
        if self.closed_with is not None:
            return
        self.closed_with = reason
        self._outbox.clear()
        calls = list(self._calls.values())
        self._calls.clear()
        lost = close_reason[len(_HOST_LOST_PREFIX) :] if code == HOST_LOST_CLOSE and close_reason.startswith(_HOST_LOST_PREFIX) else None
        for call in calls:
            if lost is None:
                call.reject(ConnectionError(f"connection to {self.url} closed during a call ({reason})"))
            else:
                call.reject(from_rpc_error({"code": ERROR_CODES["Unavailable"], "message": f"host lost during {call.method}: {lost}"}))
        for s in list(self._streams.values()):
            s.fail(ConnectionError(f"connection to {self.url} closed ({reason})") if lost is None else SandboxError(f"stream aborted: {close_reason}"))
        self._changed()
