# hand-written: the sync flavour in ../_sync/deno.py is generated from this file
"""``AsyncDenoDeploy``: the entry point of Deno's Python SDK (``deno_sandbox``), over an sbx
daemon, so that code written for it moves over by changing its import. ``sdk.sandbox`` creates,
connects to and lists sandboxes, ``sdk.volumes`` and ``sdk.snapshots`` are sbx's; the Deno Deploy namespaces (apps, ...) raise
``NotSupportedError``. Options of Deno's hosted sandboxes that mean nothing here are ignored with
a warning."""

from __future__ import annotations

import builtins
import warnings
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypedDict

from .._errors import NotSupportedError
from .._generated.models import SandboxInfo, SecretSpec
from .sandbox import AsyncSandbox
from .volumes import AsyncImages, AsyncSnapshots, AsyncVolumes

__all__ = ["AsyncDenoDeploy", "Options"]


class Options(TypedDict, total=False):
    """Deno's options: ``token`` (else SBX_TOKEN or the daemon's token file); sbx adds ``url``."""

    token: str | None
    url: str | None
    regions: builtins.list[str] | None


class AsyncOpening:
    """What ``sdk.sandbox.create()`` returns: a context manager that makes the sandbox on entry."""

    def __init__(self, open: Callable[[], Awaitable[AsyncSandbox]]) -> None:
        self._open = open
        self._sandbox: AsyncSandbox | None = None

    async def __aenter__(self) -> AsyncSandbox:
        self._sandbox = await self._open()
        return self._sandbox

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._sandbox is not None:
            await self._sandbox.__aexit__(exc_type, exc, tb)


class AsyncSandboxApi:
    """``sdk.sandbox``."""

    def __init__(self, url: str | None, token: str | None) -> None:
        self._url = url
        self._token = token

    def create(
        self,
        *,
        region: str | None = None,
        env: dict[str, str] | None = None,
        timeout: str | None = None,
        memory_mb: int | None = None,
        debug: bool | None = None,
        labels: dict[str, str] | None = None,
        root: str | None = None,
        volumes: dict[str, str] | None = None,
        allow_net: builtins.list[str] | None = None,
        secrets: dict[str, SecretSpec] | None = None,
        ssh: bool | None = None,
        port: int | None = None,
    ) -> AsyncOpening:
        """A new sandbox, as a context manager (``with sdk.sandbox.create() as sb``): destroyed when the block ends."""
        ignored = [name for name, value in (("region", region), ("debug", debug)) if value is not None]
        if ignored:
            warnings.warn(f"sbx ignores {', '.join(ignored)} (options of Deno's hosted sandboxes; sbx runs them on the daemon at url)", stacklevel=2)
        for name, value, why in (
            ("ssh", ssh, "sbx gives no SSH access to sandboxes; run commands with spawn or sh"),
            ("port", port, "exposing a sandbox's port is not supported by sbx yet"),
        ):
            if value:
                raise NotSupportedError(f"{name}: {why}")
        memory = f"{memory_mb}MiB" if memory_mb is not None else None
        return AsyncOpening(
            lambda: AsyncSandbox.create(
                url=self._url, token=self._token, memory=memory, timeout=timeout, env=env, allow_net=allow_net, secrets=secrets, labels=labels, volumes=volumes, root=root
            )
        )

    def connect(self, sandbox_id: str, *, debug: bool | None = None) -> AsyncOpening:
        """An existing sandbox of this token, as a context manager (only disconnects when the block ends)."""
        return AsyncOpening(lambda: AsyncSandbox.connect(sandbox_id, url=self._url, token=self._token))

    async def list(self, *, labels: dict[str, str] | None = None) -> builtins.list[SandboxInfo]:
        """This token's sandboxes, optionally only those carrying all the given labels."""
        return await AsyncSandbox.list(labels=labels, url=self._url, token=self._token)


class _Unsupported:
    """A Deno Deploy namespace sbx lacks: every method raises ``NotSupportedError`` naming it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def unsupported(*args: object, **kwargs: object) -> Any:
            raise NotSupportedError(f"sdk.{self._name}.{method}: sbx runs sandboxes; Deno Deploy's {self._name} are not supported")

        return unsupported


class AsyncDenoDeploy:
    """Deno's Python SDK entry point, over an sbx daemon.

    Example::

        sdk = DenoDeploy()
        with sdk.sandbox.create() as sb:
            sb.fs.write_text_file("/tmp/example.txt", "Hello, World!")
    """

    def __init__(self, options: Options | None = None) -> None:
        opts = options or {}
        self.sandbox = AsyncSandboxApi(opts.get("url"), opts.get("token"))
        for name in ("apps", "revisions", "layers", "timelines"):
            setattr(self, name, _Unsupported(name))
        #: sbx's volumes and snapshots (``create(slug, capacity, *, region=None, from_snapshot=None)``).
        self.volumes = AsyncVolumes(opts.get("url"), opts.get("token"))
        self.snapshots = AsyncSnapshots(opts.get("url"), opts.get("token"))
        #: sbx's root images built from Debian's packages (``build(slug, *, packages=None, suite=None, capacity=None)``).
        self.images = AsyncImages(opts.get("url"), opts.get("token"))
