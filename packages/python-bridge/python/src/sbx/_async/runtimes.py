# hand-written: the sync flavour in ../_sync/runtimes.py is generated from this file
"""Code runtimes with state inside a sandbox: ``sb.deno`` and ``sb.python``."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

from .._errors import RpcError, SandboxError
from .._generated.models import ERROR_CODES, ReplEvalResult
from .._http import FetchResponse
from .._repl import ReplError, ReplOutput, decode_value
from .._types import DEFAULT_MAX_READ_BYTES, Stdio
from .fetch import Body, fetch_inside
from .process import AsyncChildProcess, launch
from .transport import AsyncConnection

__all__ = ["AsyncDenoProcess", "AsyncDenoRepl", "AsyncPythonRepl", "AsyncSandboxDeno", "AsyncSandboxPython", "listening_ports"]

Timeout = int | str | None


async def listening_ports(conn: AsyncConnection, sandbox: str, pid: int) -> builtins.list[int]:
    """The TCP ports ``pid`` and its descendants listen on, ascending; [] once it has exited."""
    try:
        return (await conn.process_ports(sandbox=sandbox, pid=pid)).ports
    except RpcError as err:
        if err.rpc_code == ERROR_CODES["ProcessNotFound"]:
            return []
        raise


async def _http_ready(conn: AsyncConnection, sandbox: str, pid: int, timeout: float | None) -> bool:
    delay = 0.02
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            if (await conn.process_ports(sandbox=sandbox, pid=pid)).ports:
                return True
        except RpcError as err:
            if err.rpc_code == ERROR_CODES["ProcessNotFound"]:
                return False
            raise
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"process {pid} did not listen on a TCP port within {timeout} s")
        # unasync: time.sleep(delay)
        await asyncio.sleep(delay)
        delay = min(0.25, delay * 1.5)


async def _fetch_own(
    conn: AsyncConnection, sandbox: str, pid: int, url: str, method: str, headers: Mapping[str, str] | None, body: Body, timeout: float | None, max_bytes: int
) -> FetchResponse:
    ports = await listening_ports(conn, sandbox, pid)
    if not ports:
        raise SandboxError(f"process {pid} listens on no TCP port (yet); wait for http_ready() first")
    return await fetch_inside(conn, sandbox, url, method=method, headers=headers, body=body, timeout=timeout, max_bytes=max_bytes, port=ports[0])


class AsyncDenoProcess(AsyncChildProcess):
    """A Deno program started by ``deno.run``: a process that also knows when it serves HTTP."""

    async def http_ready(self, timeout: float | None = None) -> bool:
        """True once the program (or a child) listens on a TCP port; False if it exits first.
        With ``timeout`` (seconds), raises ``TimeoutError`` when neither happens in time."""
        return await _http_ready(self._conn, self._sandbox, self.pid, timeout)

    async def fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_MAX_READ_BYTES,
    ) -> FetchResponse:
        """An HTTP request to the port this program listens on (the lowest, if several), whatever
        the URL's host: ``url`` gives the path and query (``"/path"`` alone will do). As ``sb.fetch``."""
        return await _fetch_own(self._conn, self._sandbox, self.pid, url, method, headers, body, timeout, max_bytes)


class AsyncRepl(AsyncChildProcess):
    """A running REPL (a process, whose exit and output work as any spawn's); state persists
    between calls until ``close()``."""

    async def http_ready(self, timeout: float | None = None) -> bool:
        """True once code in the REPL listens on a TCP port; False if the REPL exits first."""
        return await _http_ready(self._conn, self._sandbox, self.pid, timeout)

    async def fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_MAX_READ_BYTES,
    ) -> FetchResponse:
        """An HTTP request to the port this REPL's code listens on (the lowest, if several), whatever
        the URL's host: ``url`` gives the path and query (``"/path"`` alone will do). As ``sb.fetch``."""
        return await _fetch_own(self._conn, self._sandbox, self.pid, url, method, headers, body, timeout, max_bytes)

    async def _run(self, result: ReplEvalResult) -> ReplOutput:
        if not result.ok:
            e = result.error
            err = ReplError(e.type, e.message, e.traceback, result.stdout, result.stderr) if e else ReplError("Error", "the REPL reported a failure without saying what", "")
            return ReplOutput(value=None, repr=None, stdout=result.stdout, stderr=result.stderr, error=err)
        return ReplOutput(value=decode_value(result.value), repr=result.repr, stdout=result.stdout, stderr=result.stderr, error=None)

    async def _exec(self, code: str, timeout: Timeout) -> ReplOutput:
        return await self._run(await self._conn.repl_eval(sandbox=self._sandbox, pid=self.pid, code=code, timeout=timeout))

    async def eval(self, code: str, *, timeout: Timeout = None) -> Any:
        """Runs code and returns the value of its last expression; raises ``ReplError`` for an exception.
        ``timeout`` (milliseconds or "30s") interrupts the call."""
        out = await self._exec(code, timeout)
        if out.error is not None:
            raise out.error
        return out.value

    async def call(self, fn: str, *args: Any, timeout: Timeout = None) -> Any:
        """Calls a function of the REPL with JSON arguments: a name defined in it, or a function
        expression (``lambda a, b: a + b``, ``(a, b) => a + b``). A coroutine/promise is awaited."""
        out = await self._run(await self._conn.repl_call(sandbox=self._sandbox, pid=self.pid, fn=fn, args=list(args), timeout=timeout))
        if out.error is not None:
            raise out.error
        return out.value

    async def close(self) -> None:
        """Ends the REPL (its state is lost); closing one that already ended does nothing."""
        try:
            await self._conn.repl_close(sandbox=self._sandbox, pid=self.pid)
        except RpcError as err:
            if err.rpc_code != ERROR_CODES["ProcessNotFound"]:
                raise
        await self.wait()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncDenoRepl(AsyncRepl):
    """A Deno REPL: one isolate whose state (let, const, functions, imports) persists; code is
    TypeScript or JavaScript with top-level await. JavaScript exceptions raise ``ReplError``
    with the class name in ``type``.

    Example::

        with sb.deno.repl() as repl:
            repl.eval("const x = 40;")
            repl.eval("x + 2")                   # 42
            repl.call("(a, b) => a * b", 6, 7)   # 42
    """


class AsyncPythonRepl(AsyncRepl):
    """A Python session: globals, imports and functions persist. Each call's stdout and stderr are
    captured; a ``timeout`` interrupts the code (``ReplError`` of type "TimeoutError") and the
    session, with its state, goes on.

    Example::

        with sb.python.repl() as py:
            py.eval("import math\\nr = 2")
            py.eval("round(math.pi * r ** 2, 3)")   # 12.566
            out = py.exec("print('hi'); 1 / 0")
            out.stdout, out.error.type              # ("hi\\n", "ZeroDivisionError")
    """

    async def exec(self, code: str, *, timeout: Timeout = None) -> ReplOutput:
        """Runs code and reports everything: value, repr, captured stdout and stderr, and the
        exception (returned in ``error``, not raised)."""
        return await self._exec(code, timeout)


R = TypeVar("R", AsyncDenoRepl, AsyncPythonRepl)


class AsyncRuntime:
    def __init__(self, conn: AsyncConnection, sandbox: str) -> None:
        self._conn = conn
        self._sandbox = sandbox

    async def _start(
        self,
        cls: type[R],
        language: Literal["deno", "python"],
        args: builtins.list[str] | None,
        cwd: str | None,
        env: dict[str, str] | None,
        clear_env: bool | None,
        stdout: Stdio,
        stderr: Stdio,
    ) -> R:
        async def start(_i: int | None, o: int | None, e: int | None) -> int:
            started = await self._conn.repl_start(sandbox=self._sandbox, language=language, args=args, cwd=cwd, env=env, clear_env=clear_env or None, stdout=o, stderr=e)
            return started.pid

        return await launch(self._conn, self._sandbox, cls, "null", stdout, stderr, start)


SpawnAs = Callable[..., Awaitable[AsyncDenoProcess]]


class AsyncSandboxDeno(AsyncRuntime):
    """Deno in the sandbox (the daemon's own, read-only at /.sbx/bin/deno and on PATH)."""

    def __init__(self, conn: AsyncConnection, sandbox: str, spawn_as: SpawnAs) -> None:
        super().__init__(conn, sandbox)
        self._spawn_as = spawn_as

    async def run(
        self,
        *,
        entrypoint: str | None = None,
        code: str | None = None,
        extension: Literal["ts", "tsx", "js", "jsx"] = "ts",
        script_args: builtins.list[str] | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        clear_env: bool | None = None,
        stdin: Literal["piped", "null"] = "null",
        stdout: Stdio = "piped",
        stderr: Stdio = "piped",
    ) -> AsyncDenoProcess:
        """Runs a Deno program with all of Deno's permissions (the sandbox is the boundary):
        ``entrypoint`` (a path inside the sandbox or a URL) or ``code`` (TypeScript unless
        ``extension`` says otherwise). ``http_ready()`` tells when it serves HTTP.

        Example::

            server = sb.deno.run(code="Deno.serve({ port: 8000 }, () => new Response('hi'))")
            server.http_ready()                                   # True
            url = sb.expose_http(8000)                            # http://127.0.0.1:PORT/TOKEN/
        """
        if (entrypoint is None) == (code is None):
            raise ValueError("deno.run: give exactly one of entrypoint= or code=")
        if entrypoint is not None:
            args = ["run", "-A", "--quiet", entrypoint, *(script_args or [])]
        else:
            args = ["eval", "--quiet", f"--ext={extension}", str(code), *(script_args or [])]
        return await self._spawn_as(AsyncDenoProcess, "deno", args=args, cwd=cwd, env=env, clear_env=clear_env, stdin=stdin, stdout=stdout, stderr=stderr)

    async def repl(
        self,
        *,
        args: builtins.list[str] | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        clear_env: bool | None = None,
        stdout: Stdio = "null",
        stderr: Stdio = "null",
    ) -> AsyncDenoRepl:
        """Starts a REPL. What its code prints with console.log goes to ``stdout``: "null" (default),
        "piped" (read ``repl.stdout``; unread output stops the REPL once the window is full) or "inherit"."""
        return await self._start(AsyncDenoRepl, "deno", args, cwd, env, clear_env, stdout, stderr)

    async def eval(self, code: str, *, timeout: Timeout = None, env: dict[str, str] | None = None, cwd: str | None = None) -> Any:
        """Evaluates code in a new REPL that is closed afterwards; the value of its last expression.

        Example::

            sb.deno.eval("const a = 1; const b = 2; a + b;")   # 3
        """
        repl = await self.repl(env=env, cwd=cwd)
        try:
            return await repl.eval(code, timeout=timeout)
        finally:
            await repl.close()


class AsyncSandboxPython(AsyncRuntime):
    """A stateful Python in the sandbox (the host's python3)."""

    async def repl(
        self,
        *,
        args: builtins.list[str] | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        clear_env: bool | None = None,
        stdout: Stdio = "null",
        stderr: Stdio = "null",
    ) -> AsyncPythonRepl:
        """Starts a session. Calls capture their own output; ``stdout``/``stderr`` get only what is
        printed between calls (background threads): "null" (default), "piped" or "inherit"."""
        return await self._start(AsyncPythonRepl, "python", args, cwd, env, clear_env, stdout, stderr)

    async def eval(self, code: str, *, timeout: Timeout = None, env: dict[str, str] | None = None, cwd: str | None = None) -> Any:
        """Runs code in a new session that is closed afterwards; the value of its last expression."""
        repl = await self.repl(env=env, cwd=cwd)
        try:
            return await repl.eval(code, timeout=timeout)
        finally:
            await repl.close()
