"""Exit statuses the daemon announced, kept until someone asks for them."""

from __future__ import annotations

from collections import OrderedDict

from .._generated.models import ExitStatus
from .._types import KILLED

__all__ = ["Exits"]

# Statuses nobody waits for (processes spawned and forgotten) must not grow without bound.
_KEEP = 4096


class Exits:
    """process.exit statuses by (sandbox, pid), and the sandboxes known to be gone."""

    def __init__(self) -> None:
        self._statuses: OrderedDict[tuple[str, int], ExitStatus] = OrderedDict()
        self._stopped: set[str] = set()

    def exited(self, sandbox: str, pid: int, status: ExitStatus) -> None:
        """Records a process.exit notification."""
        self._statuses[(sandbox, pid)] = status
        while len(self._statuses) > _KEEP:
            self._statuses.popitem(last=False)

    def stopped(self, sandbox: str) -> None:
        """Records that a sandbox is gone: its processes will send no exit of their own."""
        self._stopped.add(sandbox)

    def take(self, sandbox: str, pid: int) -> ExitStatus | None:
        """The process's status (handed out once), KILLED if its sandbox is gone, None while it runs."""
        status = self._statuses.pop((sandbox, pid), None)
        if status is not None:
            return status
        return KILLED if sandbox in self._stopped else None
