"""Shapes of the ergonomic layer shared by the sync and async flavours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._generated.models import ExitStatus

__all__ = ["CommandOutput", "Stdio", "KILLED"]

Stdio = Literal["piped", "inherit", "null"]

#: The status of a process whose sandbox was destroyed under it.
KILLED = ExitStatus(success=False, code=137, signal="SIGKILL", oom=False)


@dataclass(frozen=True)
class CommandOutput:
    """What ``output()`` and ``sh()`` give: the exit status and whatever stdout/stderr were piped."""

    status: ExitStatus
    stdout: bytes | None
    stderr: bytes | None

    @property
    def stdout_text(self) -> str | None:
        return None if self.stdout is None else self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str | None:
        return None if self.stderr is None else self.stderr.decode("utf-8", errors="replace")

    @property
    def success(self) -> bool:
        return self.status.success

    def text(self) -> str:
        """stdout as text without its trailing newline."""
        t = self.stdout_text or ""
        return t[:-1] if t.endswith("\n") else t
