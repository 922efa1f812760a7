"""Shapes of the ergonomic layer shared by the sync and async flavours."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from ._generated.models import ExitStatus

__all__ = ["CommandOutput", "WalkEntry", "Stdio", "KILLED", "DEFAULT_MAX_READ_BYTES", "DEFAULT_MAX_DOWNLOAD_BYTES"]

Stdio = Literal["piped", "inherit", "null"]

#: Bytes ``read_file`` and ``read_text_file`` hold in memory at most, unless told otherwise.
DEFAULT_MAX_READ_BYTES = 256 * 1024 * 1024

#: Bytes ``download`` writes to the local disk at most, unless told otherwise: 10 GiB (to disk, not
#: memory, so far above ``read_file``'s limit, yet no sandbox fills a disk with one sparse file).
DEFAULT_MAX_DOWNLOAD_BYTES = 10 * 1024 * 1024 * 1024

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
        """stdout as text without its one trailing newline (TypeScript's ``sh`...`.text()`` keeps it: stdout exactly)."""
        t = self.stdout_text or ""
        if t.endswith("\r\n"):
            return t[:-2]
        return t[:-1] if t.endswith("\n") else t

    def json(self) -> Any:
        """stdout parsed as JSON (like TypeScript's ``sh`...`.json()``); raises ``ValueError`` when it is not JSON."""
        return json.loads(self.stdout_text or "")


@dataclass(frozen=True)
class WalkEntry:
    """One entry ``sb.fs.walk`` reports: its full path inside the sandbox, its name and its kind."""

    path: str
    name: str
    is_file: bool
    is_directory: bool
    is_symlink: bool
