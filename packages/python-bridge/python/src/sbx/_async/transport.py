"""The async WebSocket transport: JSON-RPC calls, notifications and credit-controlled byte streams."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from .. import _frames as F
from .._endpoint import auth_failure, ensure_daemon, resolve_endpoint
from .._errors import ConnectionError, SandboxError, from_rpc_error
from .._generated.methods import AsyncMethods
from .._generated.models import ExitStatus, ProcessExitNotification, SandboxExitNotification
from .._types import KILLED

__all__ = ["AsyncConnection", "AsyncIncoming", "AsyncOutgoing"]

_MAX_MESSAGE = 64 << 20


class AsyncIncoming:
    """Bytes the daemon sends us; reading grants credit back. Iterate it for chunks."""

    def __init__(self, conn: AsyncConnection, stream_id: int) -> None:
        self.id = stream_id
        self._conn = conn
        self._queue: deque[bytes] = deque()
        self._ended = False
        self._error: BaseException | None = None
        self._wake = asyncio.Event()
        self._uncredited = 0

    def _on_frame(self, op: int, payload: bytes) -> None:
        if op == F.DATA:
            self._queue.append(payload)
        elif op == F.END:
            self._finish()
        elif op == F.ABORT:
            self.fail(SandboxError(f"stream aborted: {payload.decode('utf-8', 'replace')}"))
        self._wake.set()

    def fail(self, err: BaseException) -> None:
        if self._error is None:
            self._error = err
        self._finish()
        self._wake.set()

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
                self._conn._send_nowait(F.credit(self.id, self._uncredited))
                self._uncredited = 0
            return chunk
        if self._error is not None:
            raise self._error
        return b"" if self._ended else None

    async def read(self) -> bytes:
        """The next chunk, or b"" at the end of the stream."""
        while True:
            chunk = self.take()
            if chunk is not None:
                return chunk
            self._wake.clear()
            await self._wake.wait()

    async def cancel(self, reason: str = "cancelled by the reader") -> None:
        """Stops the stream; the daemon stops sending."""
        if not self._ended:
            self._finish()
            await self._conn._send(F.abort(self.id, reason))
        self._queue.clear()

    def __aiter__(self) -> AsyncIncoming:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk


class AsyncOutgoing:
    """Bytes we send to the daemon; writing waits for credit once a window is in flight."""

    def __init__(self, conn: AsyncConnection, stream_id: int) -> None:
        self.id = stream_id
        self._conn = conn
        self._outstanding = 0
        self._error: BaseException | None = None
        self._done = False
        self._wake = asyncio.Event()

    def _on_frame(self, op: int, payload: bytes) -> None:
        if op == F.CREDIT:
            self._outstanding = max(0, self._outstanding - F.credit_of(payload))
        elif op == F.ABORT:
            self.fail(SandboxError(f"stream closed by the sandbox: {payload.decode('utf-8', 'replace')}"))
        self._wake.set()

    def fail(self, err: BaseException) -> None:
        if self._error is None:
            self._error = err
        self._finish()
        self._wake.set()

    def _finish(self) -> None:
        self._done = True
        self._conn._streams.pop(self.id, None)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        off = 0
        while off < len(view):
            while self._outstanding >= F.STREAM_WINDOW and self._error is None:
                self._wake.clear()
                await self._wake.wait()
            if self._error is not None:
                raise self._error
            if self._done:
                raise SandboxError(f"stream {self.id} is closed")
            n = min(len(view) - off, F.MAX_CHUNK, F.STREAM_WINDOW - self._outstanding)
            await self._conn._send(F.encode(F.DATA, self.id, view[off : off + n]))
            self._outstanding += n
            off += n

    async def end(self) -> None:
        """Sends end-of-stream (EOF for a process's stdin)."""
        if self._error is not None:
            raise self._error
        if not self._done:
            self._finish()
            await self._conn._send(F.encode(F.END, self.id))

    async def abort(self, reason: str = "aborted by the writer") -> None:
        if not self._done:
            self._finish()
            await self._conn._send(F.abort(self.id, reason))


class _Call:
    def __init__(self, fut: asyncio.Future[Any]) -> None:
        self._fut = fut

    async def result(self) -> Any:
        return await self._fut


class AsyncConnection(AsyncMethods):
    """One authenticated WebSocket to the daemon; a reader task dispatches what arrives."""

    def __init__(self, ws: ClientConnection, url: str) -> None:
        self.url = url
        self._ws = ws
        self._next_id = 1
        self._next_stream = 1
        self._pending: dict[int, tuple[asyncio.Future[Any], tuple[int, ...]]] = {}
        self._streams: dict[int, AsyncIncoming | AsyncOutgoing] = {}
        self._listeners: dict[str, list[Callable[[Any], None]]] = {}
        self._exits: OrderedDict[tuple[str, int], ExitStatus] = OrderedDict()
        self._stopped: set[str] = set()
        self._changed = asyncio.Event()
        self._closed_with: str | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def open(cls, url: str | None = None, token: str | None = None) -> AsyncConnection:
        """Connects (starting a local daemon first when no url is configured and none runs)."""
        endpoint = resolve_endpoint(url, token)
        if endpoint.embedded:
            await asyncio.get_running_loop().run_in_executor(None, ensure_daemon, endpoint)
        resolved = endpoint.resolve_token()
        headers = {"Authorization": f"Bearer {resolved.value}"}
        try:
            ws = await connect(endpoint.url, additional_headers=headers, max_size=_MAX_MESSAGE, compression=None, ping_interval=None, open_timeout=30)
        except InvalidStatus as err:
            status = err.response.status_code
            if status == 401:
                raise auth_failure(endpoint.url, resolved) from err
            raise ConnectionError(f"the daemon at {endpoint.url} refused the connection (HTTP {status})") from err
        except (OSError, WebSocketException, asyncio.TimeoutError) as err:
            raise ConnectionError(f"cannot connect to the sbx daemon at {endpoint.url}: {err}") from err
        return cls(ws, endpoint.url)

    @property
    def closed(self) -> bool:
        return self._closed_with is not None

    # ------------------------------------------------------------ calls

    async def _start(self, method: str, params: dict[str, Any], streams: tuple[int, ...] = ()) -> _Call:
        self._check_open(method)
        call_id = self._next_id
        self._next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = (fut, streams)
        await self._send(json.dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}))
        return _Call(fut)

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        return await (await self._start(method, params)).result()

    def _check_open(self, method: str) -> None:
        if self._closed_with is not None:
            raise ConnectionError(f"connection to {self.url} is closed ({self._closed_with}); cannot call {method}")

    # ------------------------------------------------------------ streams

    def incoming(self) -> AsyncIncoming:
        s = AsyncIncoming(self, self._stream_id())
        self._streams[s.id] = s
        return s

    def outgoing(self) -> AsyncOutgoing:
        s = AsyncOutgoing(self, self._stream_id())
        self._streams[s.id] = s
        return s

    def _stream_id(self) -> int:
        sid = self._next_stream
        self._next_stream += 1
        return sid

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

    # ------------------------------------------------------------ notifications

    def on(self, method: str, listener: Callable[[Any], None]) -> Callable[[], None]:
        """Calls ``listener`` with the decoded params of each ``method`` notification."""
        self._listeners.setdefault(method, []).append(listener)
        return lambda: self._listeners.get(method, []).remove(listener)

    async def wait_exit(self, sandbox: str, pid: int) -> ExitStatus:
        """The exit status of a process, once its process.exit notification arrived."""
        while True:
            status = self._exits.pop((sandbox, pid), None)
            if status is not None:
                return status
            if sandbox in self._stopped:
                return KILLED
            if self._closed_with is not None:
                raise ConnectionError(f"lost the connection before process {pid} exited ({self._closed_with})")
            self._changed.clear()
            await self._changed.wait()

    def forget_sandbox(self, sandbox: str) -> None:
        self._stopped.add(sandbox)
        self._changed.set()

    # ------------------------------------------------------------ io

    async def _send(self, message: str | bytes) -> None:
        if self._closed_with is not None:
            raise ConnectionError(f"connection to {self.url} is closed ({self._closed_with})")
        try:
            await self._ws.send(message)
        except WebSocketException as err:
            self._shutdown(str(err))
            raise ConnectionError(f"connection to {self.url} closed ({err})") from err

    def _send_nowait(self, frame: bytes) -> None:
        """Credit frames are sent from synchronous code paths; a closed connection drops them."""
        if self._closed_with is None:
            task = asyncio.get_running_loop().create_task(self._send(frame))
            task.add_done_callback(lambda t: t.exception())

    async def _read_loop(self) -> None:
        reason = "closed"
        try:
            async for message in self._ws:
                if isinstance(message, bytes):
                    self._on_binary(message)
                else:
                    self._on_text(message)
            reason = f"closed with code {self._ws.close_code}"
        except WebSocketException as err:
            reason = str(err) or type(err).__name__
        except Exception as err:  # a bug in dispatch must not leave calls hanging
            reason = f"{type(err).__name__}: {err}"
        finally:
            self._shutdown(reason)

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
        entry = self._pending.pop(call_id, None)
        if entry is None:
            return
        fut, streams = entry
        if fut.done():
            return
        if "error" in msg:
            err = from_rpc_error(msg["error"])
            for sid in streams:
                s = self._streams.get(sid)
                if s is not None:
                    s.fail(err)
            fut.set_exception(err)
        else:
            fut.set_result(msg.get("result"))

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
        self._changed.set()
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
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"connection to {self.url} closed during a call ({reason})"))
        self._pending.clear()
        for s in list(self._streams.values()):
            s.fail(ConnectionError(f"connection to {self.url} closed ({reason})"))
        self._changed.set()

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
        self._shutdown("closed by the client")
