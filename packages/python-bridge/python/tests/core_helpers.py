"""Feeding the sans-I/O core by hand: the messages a daemon would send, and what the core queued."""

from __future__ import annotations

import json
from typing import Any

from sbx import _frames as F
from sbx._core import Session

URL = "ws://127.0.0.1:1"


def sent(session: Session) -> list[str | bytes]:
    """Everything the session queued to send, in order (emptying its queue)."""
    out: list[str | bytes] = []
    while (message := session.next_outgoing()) is not None:
        out.append(message)
    return out


def sent_frames(session: Session) -> list[tuple[int, int, bytes]]:
    """What the session queued, as decoded binary frames (it must have queued frames only)."""
    frames = []
    for message in sent(session):
        assert isinstance(message, bytes), f"expected a frame, the core queued {message!r}"
        frame = F.decode(message)
        assert frame is not None
        frames.append(frame)
    return frames


def answer(call_id: int, result: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": call_id, "result": result})


def failure(call_id: int, code: int, message: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}})


def notification(method: str, params: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params})


def process_exit(sandbox: str, pid: int, code: int) -> str:
    status = {"success": code == 0, "code": code, "signal": None, "oom": False}
    return notification("process.exit", {"sandbox": sandbox, "pid": pid, "status": status})


def data(stream: int, payload: bytes) -> bytes:
    return F.encode(F.DATA, stream, payload)
