# hand-written: the sync flavour in ../_sync/process.py is generated from this file
"""A process running in a sandbox."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from .._errors import InvalidOptionError
from .._generated.models import ERROR_CODES, ExitStatus, Signal
from .._types import CommandOutput, Stdio
from .streams import AsyncIncoming, AsyncOutgoing
from .transport import AsyncConnection

__all__ = ["AsyncChildProcess", "launch"]


class AsyncChildProcess:
    """A process started by ``spawn``: iterate ``stdout``/``stderr`` for chunks of bytes,
    ``write_stdin``/``close_stdin`` when spawned with ``stdin="piped"``, then ``wait()`` or
    ``output()``."""

    def __init__(
        self,
        conn: AsyncConnection,
        sandbox: str,
        pid: int,
        stdin: AsyncOutgoing | None,
        stdout: AsyncIncoming | None,
        stderr: AsyncIncoming | None,
        inherit: tuple[bool, bool] = (False, False),
    ) -> None:
        self._conn = conn
        self._sandbox = sandbox
        #: Process id inside the sandbox.
        self.pid = pid
        self._stdin = stdin
        self._inherit = inherit
        self._status: ExitStatus | None = None
        #: stdout chunks when spawned with stdout="piped" (the default).
        self.stdout = None if inherit[0] else stdout
        #: stderr chunks when spawned with stderr="piped" (the default).
        self.stderr = None if inherit[1] else stderr
        self._inherited = (stdout if inherit[0] else None, stderr if inherit[1] else None)
        #: After ``attach``: the byte offsets stdout and stderr resumed at (None when not attached).
        self.stdout_from: int | None = None
        self.stderr_from: int | None = None

    @property
    def status(self) -> ExitStatus | None:
        """The exit status once ``wait()`` or ``output()`` saw it, else None."""
        return self._status

    async def write_stdin(self, data: bytes | str) -> None:
        """Writes to the process's stdin (waits while the sandbox is not reading)."""
        if self._stdin is None:
            raise ValueError('spawn with stdin="piped" to write to stdin')
        await self._stdin.write(data.encode() if isinstance(data, str) else data)

    async def close_stdin(self) -> None:
        """Sends EOF on stdin."""
        if self._stdin is not None:
            await self._stdin.end()

    async def kill(self, signal: Signal = "SIGTERM") -> None:
        """Sends a signal (default SIGTERM)."""
        await self._conn.process_kill(sandbox=self._sandbox, pid=self.pid, signal=signal)

    async def resize(self, cols: int, rows: int) -> None:
        """Resizes the terminal of a process spawned with ``pty=True`` (it gets SIGWINCH)."""
        await self._conn.process_resize(sandbox=self._sandbox, pid=self.pid, cols=cols, rows=rows)

    async def wait(self) -> ExitStatus:
        """Waits for the process to exit (copying inherited output through meanwhile)."""
        await self._drain_inherited()
        if self._status is None:
            self._status = await self._conn.wait_exit(self._sandbox, self.pid)
        return self._status

    async def output(self) -> CommandOutput:
        """Waits for the exit and collects whatever stdout and stderr were piped."""
        sinks: list[Callable[[bytes], object] | None] = [None, None, _write_to(sys.stdout), _write_to(sys.stderr)]
        out, err, _, _ = await self._conn.collect([self.stdout, self.stderr, *self._inherited], sinks)
        self._inherited = (None, None)
        return CommandOutput(status=await self.wait(), stdout=out, stderr=err)

    async def _drain_inherited(self) -> None:
        if self._inherited != (None, None):
            streams = list(self._inherited)
            self._inherited = (None, None)
            await self._conn.collect(streams, [_write_to(sys.stdout), _write_to(sys.stderr)])


P = TypeVar("P", bound=AsyncChildProcess)


_STDIO_MODES = ("piped", "inherit", "null")


def _check_stdio(name: str, mode: object, allowed: tuple[str, ...]) -> None:
    """Refuses a stdio mode that is not one of ``allowed``, naming the option."""
    if isinstance(mode, str) and mode in allowed:
        return
    shown = repr(mode[:64]) if isinstance(mode, str) else type(mode).__name__
    raise InvalidOptionError(f"{name}: must be {', '.join(repr(m) for m in allowed)}, not {shown}", ERROR_CODES["InvalidParams"])


async def launch(
    conn: AsyncConnection,
    sandbox: str,
    cls: type[P],
    stdin: Literal["piped", "null"],
    stdout: Stdio,
    stderr: Stdio,
    start: Callable[[int | None, int | None, int | None], Awaitable[int]],
) -> P:
    """Starts a process with ``start`` (given the stream ids its call names: stdin, stdout, stderr;
    it returns the pid) and builds its handle: what ``spawn``, ``deno.run`` and the REPLs share."""
    # Checked here, not only typed: a mode nobody reads would leave its stream unread, and the process stalled on it.
    _check_stdio("stdin", stdin, ("piped", "null"))
    _check_stdio("stdout", stdout, _STDIO_MODES)
    _check_stdio("stderr", stderr, _STDIO_MODES)
    stdin_s = conn.outgoing() if stdin == "piped" else None
    stdout_s = None if stdout == "null" else conn.incoming()
    stderr_s = None if stderr == "null" else conn.incoming()
    try:
        pid = await start(stdin_s.id if stdin_s else None, stdout_s.id if stdout_s else None, stderr_s.id if stderr_s else None)
    except BaseException as err:
        for s in (stdin_s, stdout_s, stderr_s):
            if s is not None:
                s.fail(err)
        raise
    return cls(conn, sandbox, pid, stdin_s, stdout_s, stderr_s, (stdout == "inherit", stderr == "inherit"))


def _write_to(stream: object) -> Callable[[bytes], object]:
    def write(chunk: bytes) -> None:
        buf = getattr(stream, "buffer", None)
        if buf is not None:
            buf.write(chunk)
            buf.flush()
        else:
            getattr(stream, "write")(chunk.decode("utf-8", "replace"))

    return write
