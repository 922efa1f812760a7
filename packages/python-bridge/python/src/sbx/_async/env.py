# hand-written: the sync flavour in ../_sync/env.py is generated from this file
"""The sandbox's default environment: what every later spawn starts from."""

from __future__ import annotations

from .transport import AsyncConnection

__all__ = ["AsyncSandboxEnv"]


class AsyncSandboxEnv:
    """``sb.env``: names and values pass through exactly as given."""

    def __init__(self, conn: AsyncConnection, sandbox: str) -> None:
        self._conn = conn
        self._sandbox = sandbox

    async def get(self, name: str) -> str | None:
        """A variable's value, or None when unset."""
        return await self._conn.env_get(sandbox=self._sandbox, name=name)

    async def set(self, name: str, value: str) -> None:
        """Sets a variable for processes spawned later."""
        await self._conn.env_set(sandbox=self._sandbox, name=name, value=value)

    async def delete(self, name: str) -> None:
        """Removes a variable for processes spawned later."""
        await self._conn.env_delete(sandbox=self._sandbox, name=name)

    async def to_object(self) -> dict[str, str]:
        """The whole environment a process spawned now starts with (the base one included)."""
        return await self._conn.env_to_object(sandbox=self._sandbox)

    async def as_dict(self) -> dict[str, str]:
        """``to_object`` by the name Deno's Python SDK gives it."""
        return await self.to_object()
