"""Credit accounting of one byte stream in each direction (see packages/protocol/src/frames.ts)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .. import _frames as F
from .._errors import SandboxError
from .watch import Watched

__all__ = ["InboundStream", "OutboundStream"]

#: Queues a binary frame for the driver to send.
Send = Callable[[bytes], None]
#: Drops a finished stream from the session's table (frames still arriving for it are ignored).
Done = Callable[[int], None]


class _Stream(Watched):
    """What both directions share: an id, a way to queue frames, and how a stream ends."""

    def __init__(self, stream_id: int, send: Send, done: Done) -> None:
        super().__init__()
        self.id = stream_id
        self._send = send
        self._done = done
        #: Ended, cancelled, aborted or failed: no more frames in either direction.
        self.finished = False
        self.error: BaseException | None = None

    def fail(self, err: BaseException) -> None:
        """Ends the stream with ``err`` (the first error wins)."""
        if self.error is None:
            self.error = err
        self._finish()
        self._changed()

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            self._done(self.id)


class InboundStream(_Stream):
    """Bytes the daemon sends on one stream: queued until taken; taking grants credit back in batches.

    After a failure, queued chunks are still handed out before the error is raised.
    """

    def __init__(self, stream_id: int, send: Send, done: Done) -> None:
        super().__init__(stream_id, send, done)
        self._queue: deque[bytes] = deque()
        # Taken by the reader and not yet credited (credit goes back in batches: fewer frames).
        self._uncredited = 0
        # Received and not yet credited: what the daemon counts against its window.
        self._in_flight = 0

    def frame(self, op: int, payload: bytes) -> None:
        """Applies a frame the daemon sent on this stream."""
        if op == F.DATA:
            self._in_flight += len(payload)
            if self._in_flight > F.STREAM_WINDOW:
                self._overrun()
                return
            self._queue.append(payload)
        elif op == F.END:
            self._finish()
        elif op == F.ABORT:
            self.fail(SandboxError(f"stream aborted: {payload.decode('utf-8', 'replace')}"))
            return  # fail() told the watchers
        self._changed()

    def _overrun(self) -> None:
        # Bytes past the window would be buffered without bound: the stream is stopped, as the daemon's relay does.
        reason = f"protocol error: {self._in_flight} bytes in flight on stream {self.id} exceed the window of {F.STREAM_WINDOW}"
        self._send(F.abort(self.id, reason))
        self.fail(SandboxError(reason))

    def take(self) -> bytes | None:
        """A queued chunk (crediting it), b"" at the end, None when nothing is there yet; raises the stream's error."""
        if self._queue:
            chunk = self._queue.popleft()
            self._uncredited += len(chunk)
            if self._uncredited >= F.CREDIT_BATCH and not self.finished:
                self._send(F.credit(self.id, self._uncredited))
                self._in_flight -= self._uncredited
                self._uncredited = 0
            return chunk
        if self.error is not None:
            raise self.error
        return b"" if self.finished else None

    def cancel(self, reason: str) -> None:
        """Stops the stream: queues ABORT so the daemon stops sending, and drops what is queued."""
        if not self.finished:
            self._finish()
            self._send(F.abort(self.id, reason))
        self._queue.clear()


class OutboundStream(_Stream):
    """Bytes we send on one stream: at most a window uncredited, then the writer waits for CREDIT."""

    def __init__(self, stream_id: int, send: Send, done: Done) -> None:
        super().__init__(stream_id, send, done)
        self._outstanding = 0

    def frame(self, op: int, payload: bytes) -> None:
        """Applies a frame the daemon sent on this stream (CREDIT, or ABORT when the sandbox stopped reading)."""
        if op == F.CREDIT:
            self._outstanding = max(0, self._outstanding - F.credit_of(payload))
        elif op == F.ABORT:
            self.fail(SandboxError(f"stream closed by the sandbox: {payload.decode('utf-8', 'replace')}"))
            return  # fail() told the watchers
        self._changed()

    @property
    def blocked(self) -> bool:
        """Whether a writer must wait for credit: a whole window is in flight and nothing failed."""
        return self._outstanding >= F.STREAM_WINDOW and self.error is None

    def write_some(self, data: memoryview) -> int:
        """Queues one DATA frame of as much of ``data`` as the window and frame size allow; returns its length."""
        if self.error is not None:
            raise self.error
        if self.finished:
            raise SandboxError(f"stream {self.id} is closed")
        n = min(len(data), F.MAX_CHUNK, F.STREAM_WINDOW - self._outstanding)
        if n <= 0:
            return 0
        self._send(F.encode(F.DATA, self.id, data[:n]))
        self._outstanding += n
        return n

    def end(self) -> None:
        """Queues end-of-stream (EOF for a process's stdin); raises the stream's error instead if it failed."""
        if self.error is not None:
            raise self.error
        if not self.finished:
            self._finish()
            self._send(F.encode(F.END, self.id))

    def abort(self, reason: str) -> None:
        """Queues ABORT unless the stream already ended."""
        if not self.finished:
            self._finish()
            self._send(F.abort(self.id, reason))
