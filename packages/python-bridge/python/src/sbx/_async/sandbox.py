# hand-written: the sync flavour in ../_sync/sandbox.py is generated from this file
"""A sandbox: an isolated Linux environment on the daemon's host."""

from __future__ import annotations

import builtins
import os
import shlex
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Literal

from .._endpoint import sandbox_bind
from .._errors import ConnectionError, NotSupportedError, SandboxCommandError, SandboxError, SandboxNotFoundError
from .._generated.models import ProcessAttachResult, ProcessListing, ProcessSpawnParamsPty, SandboxEgressLogResultItem, SandboxInfo, SecretSpec, SnapshotInfo, Usage
from .._http import FetchResponse
from .._types import DEFAULT_MAX_READ_BYTES, CommandOutput, Stdio
from .env import AsyncSandboxEnv
from .fetch import Body, fetch_inside
from .fs import AsyncSandboxFs
from .process import AsyncChildProcess, P, launch
from .runtimes import AsyncSandboxDeno, AsyncSandboxPython, listening_ports
from .transport import AsyncConnection

__all__ = ["AsyncSandbox"]


def _pty_size(pty: bool, cols: int | None, rows: int | None, stderr: str) -> ProcessSpawnParamsPty | None:
    """The terminal ``spawn`` asks for, checked here so that a bad size names the option."""
    if not pty:
        if cols is not None or rows is not None:
            raise ValueError("cols/rows: only with pty=True")
        return None
    if stderr != "null":
        raise ValueError(f'stderr: must be "null" with pty=True (the terminal carries stderr in stdout), not "{stderr}"')
    size: ProcessSpawnParamsPty = {"cols": 80 if cols is None else cols, "rows": 24 if rows is None else rows}
    for k, v in size.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
            raise ValueError(f"{k}: must be an integer from 1 to 65535, not {v!r}")
    return size


def _parse_time(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s.replace("Z", "+00:00"))


class AsyncSandbox:
    """A sandbox. Use it as a context manager so it is destroyed when the block ends.

    Example::

        with Sandbox.create(timeout="5m") as sb:
            print(sb.sh("python3 -c", "print(6 * 7)").text())   # 42
    """

    def __init__(self, conn: AsyncConnection, info: SandboxInfo, owned: bool) -> None:
        self._conn = conn
        self._info = info
        self._owned = owned
        self._killed = False
        self._warnings: tuple[str, ...] = ()
        #: The sandbox's files.
        self.fs = AsyncSandboxFs(conn, info.id)
        #: The default environment of later spawns.
        self.env = AsyncSandboxEnv(conn, info.id)
        #: Deno inside the sandbox: ``eval``, stateful ``repl()``.
        self.deno = AsyncSandboxDeno(conn, info.id, self._spawn_as)
        #: A stateful Python inside the sandbox: ``eval``, ``repl()`` (``exec`` for value, output and exception).
        self.python = AsyncSandboxPython(conn, info.id)

    @classmethod
    async def create(
        cls,
        *,
        url: str | None = None,
        token: str | None = None,
        memory: int | str | None = None,
        cpus: float | None = None,
        disk: int | str | None = None,
        timeout: str | None = None,
        env: dict[str, str] | None = None,
        allow_net: builtins.list[str] | None = None,
        secrets: dict[str, SecretSpec] | None = None,
        labels: dict[str, str] | None = None,
        volumes: dict[str, str] | None = None,
        root: str | None = None,
    ) -> AsyncSandbox:
        """Starts a new sandbox (connecting via ``url``/``token``, SBX_URL/SBX_TOKEN, or a local daemon).

        ``secrets`` maps a variable name to ``{"hosts": [...], "value": ..., "body": False}``: inside,
        the variable holds ``SBX_SECRET_<random>``, and the egress proxy swaps in the value only in
        HTTPS request headers (and bodies with ``body``) to those hosts, which join ``allow_net``.

        ``volumes`` maps an absolute path inside to a volume (read-write, one sandbox at a time) or a
        snapshot (read-only), by id or slug; root-mode daemons only.

        ``root`` names a volume or snapshot to boot from instead of the host's /usr and /etc: a
        snapshot gets a private writable layer (counted in ``disk``, gone with the sandbox), a volume
        is mounted read-write as / by one sandbox at a time and keeps what is written to it.
        """
        conn = await AsyncConnection.open(url, token, bind="new")
        try:
            info = await conn.sandbox_create(memory=memory, cpus=cpus, disk=disk, timeout=timeout, env=env, allow_net=allow_net, secrets=secrets, labels=labels, volumes=volumes, root=root)
        except BaseException:
            await conn.close()
            raise
        sandbox = cls(conn, SandboxInfo(info.id, info.labels, info.created_at, info.expires_at, info.status), owned=True)
        sandbox._warnings = tuple(info.warnings or ())
        return sandbox

    @classmethod
    async def connect(cls, id: str, *, url: str | None = None, token: str | None = None) -> AsyncSandbox:
        """Attaches to a running sandbox of this token (adopting a session sandbox whose creator left)."""
        conn = await AsyncConnection.open(url, token, bind=sandbox_bind(id))
        try:
            info = await conn.sandbox_connect(id=id)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, info, owned=False)

    @classmethod
    async def list(cls, *, labels: dict[str, str] | None = None, url: str | None = None, token: str | None = None) -> builtins.list[SandboxInfo]:
        """This token's sandboxes, optionally only those carrying all the given labels."""
        conn = await AsyncConnection.open(url, token)
        try:
            return await conn.sandbox_list(labels=labels)
        finally:
            await conn.close()

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the daemon said about this sandbox when it created it: a limit it cannot enforce here
        (rootless daemons have no cgroups), or a disk cap it did not reserve. Empty for ``connect``."""
        return self._warnings

    @property
    def id(self) -> str:
        """``"sbx_"`` followed by url-safe random characters."""
        return self._info.id

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._info.labels)

    @property
    def created_at(self) -> datetime:
        created = _parse_time(self._info.created_at)
        assert created is not None
        return created

    @property
    def expires_at(self) -> datetime | None:
        """When the sandbox will be killed, or None for a session sandbox."""
        return _parse_time(self._info.expires_at)

    async def spawn(
        self,
        cmd: str,
        *,
        args: builtins.list[str] | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        clear_env: bool | None = None,
        stdin: Literal["piped", "null"] = "null",
        stdout: Stdio = "piped",
        stderr: Stdio | None = None,
        pty: bool = False,
        cols: int | None = None,
        rows: int | None = None,
        sudo: bool = False,
    ) -> AsyncChildProcess:
        """Starts a process; returns once it runs. A missing command raises an ``RpcError`` whose ``errno`` is ENOENT.

        ``pty=True`` runs it on a terminal of ``cols`` x ``rows`` (default 80 x 24) from the sandbox's
        own devpts: stdin and stdout are the terminal and stderr arrives merged into stdout (``stderr``
        must be left out or "null"); ``resize`` changes the size.

        ``sudo=True`` runs it as root: uid 0 of the sandbox's own user namespace, with HOME=/root,
        so ``apt-get install`` works into the sandbox's writable layer. Only a sandbox booted from an
        image (``root=``) has one; elsewhere ``UnsupportedError``.
        """
        if stderr is None:
            stderr = "null" if pty else "piped"
        size = _pty_size(pty, cols, rows, stderr)
        return await self._spawn_as(AsyncChildProcess, cmd, args=args, cwd=cwd, env=env, clear_env=clear_env, stdin=stdin, stdout=stdout, stderr=stderr, pty=size, sudo=sudo)

    async def processes(self) -> builtins.list[ProcessListing]:
        """The processes started in this sandbox (by any client of this token) that can be attached
        to: running or recently ended (then with ``status``), with the byte range of their output
        the daemon still keeps (``stdout.start``, ``stdout.end``)."""
        return (await self._conn.process_list(sandbox=self.id)).processes

    async def attach(self, pid: int, *, stdout_from: int | None = None, stderr_from: int | None = None) -> AsyncChildProcess:
        """Attaches to a process again, typically after ``Sandbox.connect`` from a new connection:
        its stdout and stderr from byte offsets (default: the earliest kept; the daemon keeps the
        last 1 MiB of each) and then live; this connection hears its exit. While no client is
        attached the process runs on. An offset no longer kept raises ``InvalidOptionError`` naming
        the earliest one kept. The offsets used are on the result's ``stdout_from``/``stderr_from``."""
        found: builtins.list[ProcessAttachResult] = []

        async def start(_i: int | None, o: int | None, e: int | None) -> int:
            found.append(await self._conn.process_attach(sandbox=self.id, pid=pid, stdout=o, stderr=e, stdout_from=stdout_from, stderr_from=stderr_from))
            return pid

        child = await launch(self._conn, self.id, AsyncChildProcess, "null", "piped", "piped", start)
        r = found[0]
        # Ended already: no process.exit will come, the answer carries the status.
        if r.status is not None:
            child._status = r.status
        child.stdout_from = r.stdout_from
        child.stderr_from = r.stderr_from
        return child

    async def expose_http(self, port: int | None = None, *, pid: int | None = None, public: bool = False) -> str:
        """Makes an HTTP server inside the sandbox reachable at a URL on the daemon's host until the
        sandbox ends: ``port``, or ``pid=`` for the port a process listens on. The URL carries an
        unguessable token as its first path segment; ``public=True`` serves it without one. The
        sandbox gets no inbound network: the daemon relays each connection through its supervisor."""
        if (port is None) == (pid is None):
            raise ValueError("expose_http: give exactly one of port or pid=")
        if pid is not None:
            ports = await listening_ports(self._conn, self.id, pid)
            if not ports:
                raise SandboxError(f"process {pid} listens on no TCP port (yet)")
            port = ports[0]
        assert port is not None
        return (await self._conn.net_expose_http(sandbox=self.id, port=port, public=public or None)).url

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
        """One HTTP/1.1 request to a server inside the sandbox, without exposing it: ``url`` is
        ``http://localhost:PORT/path`` (or 127.0.0.1, [::1]); any other scheme or host raises
        ``InvalidOptionError``. The supervisor opens the TCP connection on the sandbox's loopback;
        nothing listens outside. The request is sent with ``Connection: close`` (and
        ``Content-Length`` for a ``body``: bytes, or str as UTF-8); the response is read whole, at
        most ``max_bytes`` of body (default 256 MiB; more raises ``ResourceLimitError``). Nothing
        listening on the port raises an ``RpcError`` saying so; a malformed response raises
        ``HttpResponseError``. ``timeout`` (seconds) bounds the whole exchange with
        ``TimeoutError``."""
        return await fetch_inside(self._conn, self.id, url, method=method, headers=headers, body=body, timeout=timeout, max_bytes=max_bytes, port=None)

    async def expose_ssh(self) -> None:
        """Not supported: sbx offers no SSH server; use ``sbx shell ID`` or ``spawn(..., pty=True)``."""
        raise NotSupportedError("expose_ssh is not supported by sbx; for an interactive terminal use `sbx shell <id>` (CLI) or spawn(cmd, pty=True)")

    async def _spawn_as(
        self,
        cls: type[P],
        cmd: str,
        *,
        args: builtins.list[str] | None,
        cwd: str | None,
        env: dict[str, str] | None,
        clear_env: bool | None,
        stdin: Literal["piped", "null"],
        stdout: Stdio,
        stderr: Stdio,
        pty: ProcessSpawnParamsPty | None = None,
        sudo: bool = False,
    ) -> P:
        async def start(i: int | None, o: int | None, e: int | None) -> int:
            spawned = await self._conn.process_spawn(sandbox=self.id, cmd=cmd, args=args, cwd=cwd, env=env, clear_env=clear_env or None, stdin=i, stdout=o, stderr=e, pty=pty, sudo=sudo or None)
            return spawned.pid

        return await launch(self._conn, self.id, cls, stdin, stdout, stderr, start)

    async def sh(
        self,
        script: str,
        *args: str | os.PathLike[str] | int,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        sudo: bool = False,
    ) -> CommandOutput:
        """Runs ``bash -c`` with ``script`` followed by ``args``, each shell-quoted (``shlex.quote``),
        and returns its output once it exits.

        The keywords are what TypeScript's ``sh`` chain offers: ``cwd=`` is ``.cwd(p)``, ``env=``
        is ``.env(k, v)`` (added to the sandbox's environment; names pass through untouched),
        ``check=False`` is ``.noThrow()``, ``sudo=True`` is ``.sudo()`` (root, in a sandbox booted
        from an image). On the result, ``.text()`` is stdout without its
        trailing newline and ``.json()`` is stdout parsed as JSON, like ``.text()``/``.json()``.

        Raises ``SandboxCommandError`` (carrying ``status``, ``stdout`` and ``stderr``) when the
        command exits non-zero or is killed, unless ``check=False``.

        Example::

            sb.sh("ls", "-la", path)                      # runs: ls -la '<path>'
            sb.sh("git rev-parse HEAD", cwd="repo").text()
            sb.sh("echo $GREETING", env={"GREETING": "hi"}).text()   # "hi"
            sb.sh("python3 -c", "import json; print(json.dumps([1]))").json()   # [1]
            sb.sh("test -d", path, check=False).status.code
        """
        line = " ".join([script, *(shlex.quote(os.fspath(a) if isinstance(a, os.PathLike) else str(a)) for a in args)])
        p = await self.spawn("bash", args=["-c", line], cwd=cwd, env=env, sudo=sudo)
        out = await p.output()
        if check and not out.status.success:
            tail = "\n".join((out.stderr_text or "").strip().split("\n")[-5:])
            how = f"was killed by {out.status.signal}" if out.status.signal else f"exited with code {out.status.code}"
            # Not the command line: its arguments may hold secrets, and error messages end up in logs.
            raise SandboxCommandError(f"command {how}" + (f"\n{tail}" if tail else ""), out.status, out.stdout_text or "", out.stderr_text or "")
        return out

    async def extend_timeout(self, duration: str | int) -> datetime:
        """Sets the expiry to ``duration`` from now ("30s", "5m", "2h"), as Deno's; a session sandbox becomes a timed one."""
        # An int is seconds, as Deno's Python SDK takes it (``additional_s``).
        result = await self._conn.sandbox_extend_timeout(id=self.id, duration=f"{duration}s" if isinstance(duration, int) else duration)
        self._info = SandboxInfo(self._info.id, self._info.labels, self._info.created_at, result.expires_at, self._info.status)
        expires = _parse_time(result.expires_at)
        assert expires is not None
        return expires

    async def set_allow_net(self, allow_net: builtins.list[str]) -> None:
        """Replaces the hosts the sandbox may reach; open connections no longer allowed are closed."""
        await self._conn.sandbox_set_allow_net(id=self.id, allow_net=allow_net)

    async def egress_log(self, limit: int | None = None) -> builtins.list[SandboxEgressLogResultItem]:
        """Recent egress decisions, oldest first: time, host, port, allowed, and why not."""
        return await self._conn.sandbox_egress_log(id=self.id, limit=limit)

    async def usage(self) -> Usage:
        """CPU seconds, peak memory, memory GB-seconds, disk bytes, wall seconds and egress counters."""
        if self._conn.closed:
            conn = await AsyncConnection.open(self._conn.url, self._conn.token, bind=sandbox_bind(self.id))
            try:
                return await conn.sandbox_usage(id=self.id)
            finally:
                await conn.close()
        return await self._conn.sandbox_usage(id=self.id)

    async def snapshot(self, *, slug: str) -> SnapshotInfo:
        """A read-only snapshot of this sandbox's writable storage (home and /tmp, frozen for the copy):
        mount it with ``volumes``, or start a volume from it. Root-mode daemons (beyond deno-sandbox)."""
        return await self._conn.sandbox_snapshot(id=self.id, slug=slug)

    async def kill(self) -> None:
        """Destroys the sandbox now and closes this connection; once it is killed, killing it again does nothing."""
        if self._killed:
            return
        try:
            await self._conn.sandbox_kill(id=self.id)
            self._killed = True
            self._conn.forget_sandbox(self.id)
        finally:
            await self._conn.close()

    async def close(self) -> None:
        """Closes this connection; a "session" sandbox created here dies after a short grace period."""
        await self._conn.close()

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """Kills a sandbox this handle created (only disconnects from one it connected to)."""
        try:
            if self._owned:
                await self.kill()
        except (ConnectionError, SandboxNotFoundError):
            pass  # already gone is what leaving the block wanted anyway
        finally:
            await self.close()
