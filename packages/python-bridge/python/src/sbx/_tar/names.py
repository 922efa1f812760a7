"""Checks tar entry names; used on every archive unpacked locally, whoever produced it."""

from __future__ import annotations

from .._errors import SandboxError

__all__ = ["TarEntryError", "entry_parts"]


class TarEntryError(SandboxError, ValueError):
    """A tar archive held an entry sbx refuses to unpack (it would escape the target directory)."""

    code = "EINVAL"

    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(f"refusing tar entry '{entry[:512]}': {reason}")
        self.entry = entry


def entry_parts(name: str) -> list[str]:
    """The path components of an entry name, or ``TarEntryError`` saying why it would escape."""
    if "\0" in name:
        raise TarEntryError(name, "contains a NUL byte")
    if name.startswith("/"):
        raise TarEntryError(name, "is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise TarEntryError(name, "contains '..' and would escape the target directory")
    return parts
