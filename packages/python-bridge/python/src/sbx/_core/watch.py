"""State a driver can wait on without the core knowing how it waits."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Watched"]


class Watched:
    """Something whose state the core changes as messages arrive; ``watch`` is told each time.

    The asyncio driver resolves a future from the watcher; the sync driver needs none, since
    the thread that waits is the one receiving (so it looks again after every message).
    """

    def __init__(self) -> None:
        self._watchers: list[Callable[[], None]] = []

    def watch(self, watcher: Callable[[], None]) -> Callable[[], None]:
        """Calls ``watcher`` after every change until the returned function is called."""
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher)

    def _changed(self) -> None:
        for watcher in list(self._watchers):
            watcher()
