"""The sandbox's home and its other name (mirrors ``pathSpellings`` in @sbx/protocol)."""

from __future__ import annotations

from ._generated.models import SANDBOX_HOME, SANDBOX_HOME_ALIAS

__all__ = ["path_spellings"]


def path_spellings(path: str) -> list[str]:
    """The names an absolute sandbox path has: itself and, under the home, its spelling through
    the home's other name (``/home/user/x`` is ``/home/sandbox/x``)."""
    for a, b in ((SANDBOX_HOME, SANDBOX_HOME_ALIAS), (SANDBOX_HOME_ALIAS, SANDBOX_HOME)):
        if path == a or path.startswith(a + "/"):
            return [path, b + path[len(a) :]]
    return [path]
