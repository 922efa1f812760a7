"""The sync WebSocket transport: whoever waits pumps the socket, so no event-loop thread is needed.

A caller waiting for a response, a stream chunk, credit or an exit status receives messages
itself and dispatches them; chunks for other streams queue up, bounded by flow control
(the daemon never has more than a window uncredited per stream, and credit is only granted
as the consumer takes bytes).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from .. import _frames as F
from .._endpoint import auth_failure, ensure_daemon, resolve_endpoint
from .._errors import ConnectionError, SandboxError, from_rpc_error
from .._generated.methods import Methods
from .._generated.models import ExitStatus, ProcessExitNotification, SandboxExitNotification
from .._types import KILLED

__all__ = ["Connection", "Incoming", "Outgoing"]

_MAX_MESSAGE = 64 << 20


class Incoming:
    """Bytes the daemon sends us; reading grants credit back. Iterate it for chunks."""

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self.id = stream_id
        self._conn = conn
        self._queue: deque[bytes] = deque()
        self._ended = False
        self._error: BaseException | None = None
        self._uncredited = 0

    def _on_frame(self, op: int, payload: bytes) -> None:
        if op == F.DATA:
            self._queue.append(payload)
        elif op == F.END:
            self._finish()
        elif op == F.ABORT:
            self.fail(SandboxError(f"stream aborted: {payload.decode('utf-8', 'replace')}"))

    def fail(self, err: BaseException) -> None:
        if self._error is None:
            self._error = err
        self._finish()

    def _finish(self) -> None:
        if not self._ended:
            self._ended = True
            self._conn._streams.pop(self.id, None)

    def take(self) -> bytes | None:
        """A queued chunk (crediting it), b"" at the end, None when nothing is there yet."""
        if self._queue:
            chunk = self._queue.popleft()
            self._uncredited += len(chunk)
            if self._uncredited >= F.CREDIT_BATCH and not self._ended:
                self._conn._send_quietly(F.credit(self.id, self._uncredited))
                self._uncredited = 0
            return chunk
        if self._error is not None:
            raise self._error
        return b"" if self._ended else None

    def read(self) -> bytes:
        """The next chunk, or b"" at the end of the stream."""
        while True:
            chunk = self.take()
            if chunk is not None:
                return chunk
            self._conn._pump()

    def cancel(self, reason: str = "cancelled by the reader") -> None:
        """Stops the stream; the daemon stops sending."""
        if not self._ended:
            self._finish()
            self._conn._send(F.abort(self.id, reason))
        self._queue.clear()

    def __iter__(self) -> Incoming:
        return self

    def __next__(self) -> bytes:
        chunk = self.read()
        if not chunk:
            raise StopIteration
        return chunk


class Outgoing:
    """Bytes we send to the daemon; writing waits for credit once a window is in flight."""

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self.id = stream_id
        self._conn = conn
        self._outstanding = 0
        self._error: BaseException | None = None
        self._done = False

    def _on_frame(self, op: int, payload: bytes) -> None:
        if op == F.CREDIT:
            self._outstanding = max(0, self._outstanding - F.credit_of(payload))
        elif op == F.ABORT:
            self.fail(SandboxError(f"stream closed by the sandbox: {payload.decode('utf-8', 'replace')}"))

    def fail(self, err: BaseException) -> None:
        if self._error is None:
            self._error = err
        self._finish()

    def _finish(self) -> None:
        self._done = True
        self._conn._streams.pop(self.id, None)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        off = 0
        while off < len(view):
            while self._outstanding >= F.STREAM_WINDOW and self._error is None:
                self._conn._pump()
            if self._error is not None:
                raise self._error
            if self._done:
                raise SandboxError(f"stream {self.id} is closed")
            n = min(len(view) - off, F.MAX_CHUNK, F.STREAM_WINDOW - self._outstanding)
            self._conn._send(F.encode(F.DATA, self.id, view[off : off + n]))
            self._outstanding += n
            off += n

    def end(self) -> None:
        """Sends end-of-stream (EOF for a process's stdin)."""
        if self._error is not None:
            raise self._error
        if not self._done:
            self._finish()
            self._conn._send(F.encode(F.END, self.id))

    def abort(self, reason: str = "aborted by the writer") -> None:
        if not self._done:
            self._finish()
            self._conn._send(F.abort(self.id, reason))


_UNSET = object()


class _Call:
    def __init__(self, conn: Connection, call_id: int) -> None:
        self._conn = conn
        self._id = call_id

    def result(self) -> Any:
        return self._conn._await_response(self._id)


class Connection(Methods):
    """One authenticated WebSocket to the daemon, driven by whichever call is waiting."""

    def __init__(self, ws: ClientConnection, url: str) -> None:
        self.url = url
        self._ws = ws
        self._next_id = 1
        self._next_stream = 1
        self._pending: dict[int, tuple[int, ...]] = {}
        self._answers: dict[int, tuple[bool, Any]] = {}
        self._streams: dict[int, Incoming | Outgoing] = {}
        self._listeners: dict[str, list[Callable[[Any], None]]] = {}
        self._exits: OrderedDict[tuple[str, int], ExitStatus] = OrderedDict()
        self._stopped: set[str] = set()
        self._closed_with: str | None = None
        # One thread at a time receives; others wanting to wait take turns.
        self._recv_lock = threading.RLock()

    @classmethod
    def open(cls, url: str | None = None, token: str | None = None) -> Connection:
        """Connects (starting a local daemon first when no url is configured and none runs)."""
        endpoint = resolve_endpoint(url, token)
        if endpoint.embedded:
            ensure_daemon(endpoint)
        resolved = endpoint.resolve_token()
        headers = {"Authorization": f"Bearer {resolved.value}"}
        try:
            # Entering marks the connection as managed (websockets >= 17 warns otherwise); close() ends it.
            ws = connect(endpoint.url, additional_headers=headers, max_size=_MAX_MESSAGE, compression=None, open_timeout=30).__enter__()
        except InvalidStatus as err:
            status = err.response.status_code
            if status == 401:
                raise auth_failure(endpoint.url, resolved) from err
            raise ConnectionError(f"the daemon at {endpoint.url} refused the connection (HTTP {status})") from err
        except (OSError, WebSocketException, TimeoutError) as err:
            raise ConnectionError(f"cannot connect to the sbx daemon at {endpoint.url}: {err}") from err
        return cls(ws, endpoint.url)

    @property
    def closed(self) -> bool:
        return self._closed_with is not None

    # ------------------------------------------------------------ calls

    def _start(self, method: str, params: dict[str, Any], streams: tuple[int, ...] = ()) -> _Call:
        self._check_open(method)
        call_id = self._next_id
        self._next_id += 1
        self._pending[call_id] = streams
        self._send(json.dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}))
        return _Call(self, call_id)

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        return self._start(method, params).result()

    def _await_response(self, call_id: int) -> Any:
        while call_id not in self._answers:
            if call_id not in self._pending:
                raise ConnectionError(f"connection to {self.url} closed during a call ({self._closed_with})")
            self._pump()
        ok, value = self._answers.pop(call_id)
        if not ok:
            raise value
        return value

    def _check_open(self, method: str) -> None:
        if self._closed_with is not None:
            raise ConnectionError(f"connection to {self.url} is closed ({self._closed_with}); cannot call {method}")

    # ------------------------------------------------------------ streams

    def incoming(self) -> Incoming:
        s = Incoming(self, self._stream_id())
        self._streams[s.id] = s
        return s

    def outgoing(self) -> Outgoing:
        s = Outgoing(self, self._stream_id())
        self._streams[s.id] = s
        return s

    def _stream_id(self) -> int:
        sid = self._next_stream
        self._next_stream += 1
        return sid

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

    # ------------------------------------------------------------ notifications

    def on(self, method: str, listener: Callable[[Any], None]) -> Callable[[], None]:
        """Calls ``listener`` with the decoded params of each ``method`` notification."""
        self._listeners.setdefault(method, []).append(listener)
        return lambda: self._listeners.get(method, []).remove(listener)

    def wait_exit(self, sandbox: str, pid: int) -> ExitStatus:
        """The exit status of a process, once its process.exit notification arrived."""
        while True:
            status = self._exits.pop((sandbox, pid), None)
            if status is not None:
                return status
            if sandbox in self._stopped:
                return KILLED
            if self._closed_with is not None:
                raise ConnectionError(f"lost the connection before process {pid} exited ({self._closed_with})")
            self._pump()

    def forget_sandbox(self, sandbox: str) -> None:
        self._stopped.add(sandbox)

    # ------------------------------------------------------------ io

    def _send(self, message: str | bytes) -> None:
        if self._closed_with is not None:
            raise ConnectionError(f"connection to {self.url} is closed ({self._closed_with})")
        try:
            self._ws.send(message)
        except (WebSocketException, OSError) as err:
            self._shutdown(str(err))
            raise ConnectionError(f"connection to {self.url} closed ({err})") from err

    def _send_quietly(self, frame: bytes) -> None:
        try:
            self._send(frame)
        except ConnectionError:
            pass  # the stream already fails with the connection

    def _pump(self) -> None:
        """Receives and dispatches one message; raises nothing, a lost connection fails every waiter."""
        if self._closed_with is not None:
            return
        with self._recv_lock:
            try:
                message = self._ws.recv()
            except WebSocketException as err:
                self._shutdown(str(err) or type(err).__name__)
                return
            except (OSError, RuntimeError) as err:
                self._shutdown(f"{type(err).__name__}: {err}")
                return
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
        streams = self._pending.pop(call_id, None)
        if streams is None:
            return
        if "error" in msg:
            err = from_rpc_error(msg["error"])
            for sid in streams:
                s = self._streams.get(sid)
                if s is not None:
                    s.fail(err)
            self._answers[call_id] = (False, err)
        else:
            self._answers[call_id] = (True, msg.get("result"))

    def _on_notification(self, method: str, params: Any) -> None:
        try:
            if method == "process.exit":
                n = ProcessExitNotification.from_wire(params)
                self._exits[(n.sandbox, n.pid)] = n.status
                while len(self._exits) > 4096:
                    self._exits.popitem(last=False)
                decoded: Any = n
            elif method == "sandbox.exit":
                decoded = SandboxExitNotification.from_wire(params)
                self._stopped.add(decoded.id)
            else:
                decoded = params
        except (KeyError, TypeError, AttributeError):
            return
        for listener in list(self._listeners.get(method, [])):
            listener(decoded)

    def _on_binary(self, data: bytes) -> None:
        frame = F.decode(data)
        if frame is None:
            return
        op, sid, payload = frame
        s = self._streams.get(sid)
        if s is not None:
            s._on_frame(op, payload)

    def _shutdown(self, reason: str) -> None:
        if self._closed_with is not None:
            return
        self._closed_with = reason
        # Pending calls see a missing entry in _pending and raise ConnectionError.
        self._pending.clear()
        for s in list(self._streams.values()):
            s.fail(ConnectionError(f"connection to {self.url} closed ({reason})"))

    def close(self) -> None:
        """Closes the connection; pending calls raise ConnectionError."""
        try:
            self._ws.close()
        except (WebSocketException, OSError):
            pass
        self._shutdown("closed by the client")
