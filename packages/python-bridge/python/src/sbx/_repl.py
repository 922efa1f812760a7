"""What the Deno and Python REPLs share in both flavours: values rebuilt from their wire form,
the error a call raises and the outcome of one call."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._errors import SandboxError

__all__ = ["ReplError", "ReplOutput", "decode_value"]

_NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}


class ReplError(SandboxError):
    """Code in a REPL raised an exception: its class name in ``type`` ("ZeroDivisionError",
    "TypeError", "TimeoutError" for the call's timeout ...), the formatted traceback (Python) or
    stack (JavaScript) in ``traceback``, and what the call printed before it."""

    code = "REPL_ERROR"

    def __init__(self, type: str, message: str, traceback: str, stdout: str = "", stderr: str = "") -> None:  # noqa: A002 - the wire's name
        super().__init__(f"{type}: {message}")
        self.type = type
        self.traceback = traceback
        self.stdout = stdout
        self.stderr = stderr


@dataclass(frozen=True)
class ReplOutput:
    """One call's outcome: the value of its last expression (or the exception it raised, not
    raised here) and what it printed (Python captures fds 1 and 2, child processes included)."""

    value: Any
    #: Python: repr() of the value (None for None); Deno: None.
    repr: str | None
    stdout: str
    stderr: str
    error: ReplError | None


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, (set, dict)):
        raise TypeError
    return v


def decode_value(wire: Any) -> Any:
    """The value a REPL returned, rebuilt from its wire form: JSON in which objects with a "$" tag
    stand for what JSON cannot say. JavaScript's undefined becomes None, BigInt int, Date an aware
    datetime (UTC), Map a dict (keys made hashable: arrays become tuples), Set a set, bytes bytes;
    shared and circular references stay shared.

    Example::

        decode_value({"$": "map", "v": [[1, {"$": "bigint", "v": "9007199254740993"}]]})   # {1: 9007199254740993}
    """
    seen: list[Any] = []

    def dec(w: Any) -> Any:
        if isinstance(w, list):
            out: list[Any] = []
            seen.append(out)
            out.extend(dec(x) for x in w)
            return out
        if not isinstance(w, dict):
            return w
        tag = w.get("$")
        if tag is None:
            obj: dict[str, Any] = {}
            seen.append(obj)
            for k, x in w.items():
                obj[k] = dec(x)
            return obj
        v: Any = w["v"] if "v" in w else None
        if tag == "undefined":
            return None
        if tag == "num":
            return _NUMBERS.get(str(v), float(str(v)))
        if tag == "bigint":
            return int(str(v))
        if tag == "repr":
            return str(v)
        if tag == "date":
            return datetime.fromtimestamp(float(str(v)) / 1000, tz=timezone.utc)
        if tag == "regexp":
            return f"/{w.get('source')}/{w.get('flags')}"
        if tag == "bytes":
            return base64.b64decode(str(v))
        if tag == "error":
            return ReplError(str(w.get("name")), str(w.get("message")), str(w.get("stack") or ""))
        if tag == "ref":
            if not isinstance(v, int) or not 0 <= v < len(seen):
                raise ValueError(f"a REPL value refers to container {v!r}, which it never sent")
            return seen[v]
        if tag == "map":
            m: dict[Any, Any] = {}
            seen.append(m)
            for k, x in v:
                key = dec(k)
                try:
                    m[_hashable(key)] = dec(x)
                except TypeError:
                    m[repr(key)] = dec(x)
            return m
        if tag == "set":
            s: set[Any] = set()
            seen.append(s)
            for x in v:
                item = dec(x)
                try:
                    s.add(_hashable(item))
                except TypeError:
                    s.add(repr(item))
            return s
        if tag == "obj":
            o: dict[str, Any] = {}
            seen.append(o)
            for k, x in v:
                o[str(k)] = dec(x)
            return o
        raise ValueError(f'a REPL value carries the unknown tag "{tag}"')

    return dec(wire)
