"""A JSON-RPC request sent and waiting for its answer."""

from __future__ import annotations

from typing import Any

from .watch import Watched

__all__ = ["PendingCall"]


class PendingCall(Watched):
    """One request: answered with a result, or rejected (by the daemon, or by a lost connection)."""

    def __init__(self, call_id: int, streams: tuple[int, ...], method: str = "") -> None:
        super().__init__()
        self.id = call_id
        #: The method called, for the errors of a call the connection's loss ended.
        self.method = method
        #: Streams the call moves; an error answer fails them too.
        self.streams = streams
        self.done = False
        self._result: Any = None
        self._error: BaseException | None = None

    def resolve(self, result: Any) -> None:
        """Records the answer (the first one wins)."""
        if not self.done:
            self.done, self._result = True, result
            self._changed()

    def reject(self, error: BaseException) -> None:
        """Records the failure (the first outcome wins)."""
        if not self.done:
            self.done, self._error = True, error
            self._changed()

    def result(self) -> Any:
        """The answer; raises the error the call failed with. Only once ``done``."""
        if not self.done:
            raise RuntimeError(f"call {self.id} is still waiting for its answer")
        if self._error is not None:
            raise self._error
        return self._result
