"""A call that is under way while its streams move (write_file, upload, download)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Generic, Protocol, TypeVar

T = TypeVar("T")

__all__ = ["Pending", "AsyncPending", "RawPending", "AsyncRawPending"]


class RawPending(Protocol):
    def result(self) -> Any: ...


class AsyncRawPending(Protocol):
    def result(self) -> Awaitable[Any]: ...


class Pending(Generic[T]):
    """A sync call in flight; ``result()`` waits for the answer."""

    def __init__(self, raw: RawPending, convert: Callable[[Any], T]) -> None:
        self._raw = raw
        self._convert = convert

    def result(self) -> T:
        return self._convert(self._raw.result())


class AsyncPending(Generic[T]):
    """An async call in flight; ``await result()`` waits for the answer."""

    def __init__(self, raw: AsyncRawPending, convert: Callable[[Any], T]) -> None:
        self._raw = raw
        self._convert = convert

    async def result(self) -> T:
        return self._convert(await self._raw.result())
