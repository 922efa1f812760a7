"""Binary stream frames: [op u8][stream u32 BE][payload] (see packages/protocol/src/frames.ts)."""

from __future__ import annotations

import struct

from ._generated.models import CREDIT_BATCH, FRAME_HEADER, MAX_CHUNK, STREAM_WINDOW

DATA, END, CREDIT, ABORT = 0, 1, 2, 3

__all__ = ["DATA", "END", "CREDIT", "ABORT", "CREDIT_BATCH", "STREAM_WINDOW", "MAX_CHUNK", "encode", "credit", "abort", "decode"]

_HEAD = struct.Struct(">BI")


def encode(op: int, stream: int, payload: bytes | memoryview = b"") -> bytes:
    # One copy of the payload (a join takes the view as it is), not two (bytes() then +).
    return b"".join((_HEAD.pack(op, stream), payload))


def credit(stream: int, n: int) -> bytes:
    return _HEAD.pack(CREDIT, stream) + struct.pack(">I", n)


def abort(stream: int, reason: str) -> bytes:
    return encode(ABORT, stream, reason[:1024].encode())


def decode(data: bytes) -> tuple[int, int, bytes] | None:
    """(op, stream, payload), or None for a malformed frame (which is dropped, like the TS client)."""
    if len(data) < FRAME_HEADER:
        return None
    op, stream = _HEAD.unpack_from(data)
    if op > ABORT or stream == 0:
        return None
    payload = data[FRAME_HEADER:]
    if op == DATA and len(payload) > MAX_CHUNK:
        return None
    if op == CREDIT and len(payload) != 4:
        return None
    return op, stream, payload


def credit_of(payload: bytes) -> int:
    n: int = struct.unpack(">I", payload)[0]
    return n
