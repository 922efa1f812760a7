# hand-written: the sync flavour in ../_sync/volumes.py is generated from this file
"""Volumes and snapshots: ``client.volumes`` and ``client.snapshots``, after @deno/sandbox."""

from __future__ import annotations

import builtins
# unasync: from collections.abc import Callable, Iterator
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from .._errors import VolumeNotFoundError
from .._generated.models import SnapshotInfo, VolumeInfo
from .transport import AsyncConnection

__all__ = ["AsyncClient", "AsyncVolumes", "AsyncSnapshots", "AsyncImages", "AsyncPaginatedList"]

T = TypeVar("T")


@dataclass
class AsyncPaginatedList(Generic[T]):
    """One page of a list: ``items``, ``has_more``, ``next_cursor``; ``get_next_page()`` fetches the
    next one, and iterating (``async for``) runs through this page's items and every later page's."""

    items: builtins.list[T]
    next_cursor: str | None
    _fetch: Callable[[str], Awaitable[AsyncPaginatedList[T]]]

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None

    async def get_next_page(self) -> AsyncPaginatedList[T] | None:
        return None if self.next_cursor is None else await self._fetch(self.next_cursor)

    async def _walk(self) -> AsyncIterator[T]:
        page: AsyncPaginatedList[T] | None = self
        while page is not None:
            for item in page.items:
                yield item
            page = await page.get_next_page()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._walk()


class _Calls:
    def __init__(self, url: str | None, token: str | None) -> None:
        self._url = url
        self._token = token

    async def _open(self) -> AsyncConnection:
        return await AsyncConnection.open(self._url, self._token)


class AsyncVolumes(_Calls):
    """``client.volumes``: each call opens its own connection to the daemon."""

    async def create(self, slug: str, capacity: int | str, *, region: str | None = None, from_snapshot: str | None = None) -> VolumeInfo:
        """A new volume: an empty ext4 file system of ``capacity`` (bytes, or "1GiB", "500MB"), or a
        copy of snapshot ``from_snapshot``. ``region`` is accepted for compatibility and echoed back."""
        conn = await self._open()
        try:
            return await conn.volume_create(slug=slug, capacity=capacity, region=region, from_=from_snapshot)
        finally:
            await conn.close()

    async def get(self, id_or_slug: str) -> VolumeInfo | None:
        """The volume of this token with that id or slug, or None."""
        conn = await self._open()
        try:
            return await conn.volume_get(id_or_slug=id_or_slug)
        except VolumeNotFoundError:
            return None
        finally:
            await conn.close()

    async def list(self, *, search: str | None = None, limit: int | None = None, cursor: str | None = None) -> AsyncPaginatedList[VolumeInfo]:
        """This token's volumes, oldest first, ``limit`` (default 30) at a time."""
        conn = await self._open()
        try:
            page = await conn.volume_list(search=search, limit=limit, cursor=cursor)
        finally:
            await conn.close()

        async def fetch(next_cursor: str) -> AsyncPaginatedList[VolumeInfo]:
            return await self.list(search=search, limit=limit, cursor=next_cursor)

        return AsyncPaginatedList(page.items, page.next_cursor, fetch)

    async def delete(self, id_or_slug: str) -> None:
        """Deletes the volume and its data; ``InUseError`` while a sandbox has it mounted."""
        conn = await self._open()
        try:
            await conn.volume_delete(id_or_slug=id_or_slug)
        finally:
            await conn.close()

    async def resize(self, id_or_slug: str, capacity: int | str) -> VolumeInfo:
        """Grows or shrinks the file system; refused while mounted, or below what its data needs."""
        conn = await self._open()
        try:
            return await conn.volume_resize(id_or_slug=id_or_slug, capacity=capacity)
        finally:
            await conn.close()

    async def snapshot(self, id_or_slug: str, *, slug: str) -> SnapshotInfo:
        """A read-only snapshot of the volume; ``InUseError`` while a sandbox has it mounted."""
        conn = await self._open()
        try:
            return await conn.volume_snapshot(id_or_slug=id_or_slug, slug=slug)
        finally:
            await conn.close()


class AsyncSnapshots(_Calls):
    """``client.snapshots``."""

    async def get(self, id_or_slug: str) -> SnapshotInfo | None:
        """The snapshot of this token with that id or slug, or None."""
        conn = await self._open()
        try:
            return await conn.snapshot_get(id_or_slug=id_or_slug)
        except VolumeNotFoundError:
            return None
        finally:
            await conn.close()

    async def list(self, *, search: str | None = None, limit: int | None = None, cursor: str | None = None) -> AsyncPaginatedList[SnapshotInfo]:
        """This token's snapshots, oldest first, ``limit`` (default 30) at a time."""
        conn = await self._open()
        try:
            page = await conn.snapshot_list(search=search, limit=limit, cursor=cursor)
        finally:
            await conn.close()

        async def fetch(next_cursor: str) -> AsyncPaginatedList[SnapshotInfo]:
            return await self.list(search=search, limit=limit, cursor=next_cursor)

        return AsyncPaginatedList(page.items, page.next_cursor, fetch)

    async def delete(self, id_or_slug: str) -> None:
        """Deletes the snapshot; ``InUseError`` while a sandbox has it mounted or a volume is being made from it."""
        conn = await self._open()
        try:
            await conn.snapshot_delete(id_or_slug=id_or_slug)
        finally:
            await conn.close()


class AsyncImages(_Calls):
    """``client.images``: root images built from Debian's packages (sbx's own; @deno/sandbox has no
    image builder). A root image is a read-only snapshot with ``is_bootable``; get and delete it
    with ``client.snapshots``."""

    async def build(
        self,
        slug: str,
        *,
        packages: builtins.list[str] | None = None,
        suite: Literal["bookworm", "trixie"] | None = None,
        capacity: int | str | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> SnapshotInfo:
        """Builds a root image on the daemon host (mmdebstrap minbase of ``suite`` plus ``packages``,
        from the daemon's mirror; tens of seconds) and keeps it as a snapshot. ``on_progress`` gets
        each progress line as it comes. A failed build leaves nothing behind."""
        conn = await self._open()
        try:
            if on_progress is not None:
                progress = on_progress
                conn.on("image.progress", lambda n: progress(n["line"]) if isinstance(n, dict) and n.get("slug") == slug else None)
            return await conn.image_build(slug=slug, packages=packages, suite=suite, capacity=capacity)
        finally:
            await conn.close()

    async def list(self, *, search: str | None = None) -> builtins.list[SnapshotInfo]:
        """This token's root images (its snapshots with ``is_bootable``), oldest first."""
        page: AsyncPaginatedList[SnapshotInfo] | None = await AsyncSnapshots(self._url, self._token).list(search=search, limit=100)
        out: builtins.list[SnapshotInfo] = []
        while page is not None:
            out.extend(s for s in page.items if s.is_bootable)
            page = await page.get_next_page()
        return out


class AsyncClient:
    """Resources beside sandboxes: ``client.volumes``, ``client.snapshots`` and ``client.images``.

    Example::

        client = Client()
        client.volumes.create("my-vol", "1GiB")
        with Sandbox.create(volumes={"/data": "my-vol"}) as sb:
            sb.sh("echo hi > /data/f")
    """

    def __init__(self, *, url: str | None = None, token: str | None = None) -> None:
        self.volumes = AsyncVolumes(url, token)
        self.snapshots = AsyncSnapshots(url, token)
        self.images = AsyncImages(url, token)
