"""Credit accounting of the sans-I/O core's streams, fed frames by hand: batching, the window
both ways, aborts from either side."""

from __future__ import annotations

import pytest

from sbx import SandboxError
from sbx import _frames as F
from sbx._core import InboundStream, Session

from .core_helpers import URL, data, sent, sent_frames

QUARTER = F.CREDIT_BATCH // 4
FRAMES_PER_WINDOW = F.STREAM_WINDOW // F.MAX_CHUNK


def credit_payload(n: int) -> bytes:
    return n.to_bytes(4, "big")


def fill_window(s: Session, stream: int) -> None:
    """Sends a whole window of DATA, in the largest frames allowed."""
    for _ in range(FRAMES_PER_WINDOW):
        s.receive(data(stream, b"x" * F.MAX_CHUNK))


def take_window(stream: InboundStream) -> None:
    """Takes a whole window's worth of queued chunks."""
    taken = 0
    for _ in range(FRAMES_PER_WINDOW):
        chunk = stream.take()
        assert chunk is not None
        taken += len(chunk)
    assert taken == F.STREAM_WINDOW


def test_credit_goes_back_in_batches_as_chunks_are_taken() -> None:
    s = Session(URL)
    stream = s.inbound()
    for i in range(5):
        s.receive(data(stream.id, bytes([i]) * QUARTER))
    assert sent(s) == []  # receiving grants nothing: only taking does
    for i in range(3):
        assert stream.take() == bytes([i]) * QUARTER
    assert sent(s) == []
    assert stream.take() == bytes([3]) * QUARTER
    assert sent_frames(s) == [(F.CREDIT, stream.id, credit_payload(F.CREDIT_BATCH))]
    assert stream.take() == bytes([4]) * QUARTER
    assert stream.take() is None
    assert sent(s) == []  # a quarter batch taken since: still held back


def test_no_credit_once_the_stream_ended() -> None:
    s = Session(URL)
    stream = s.inbound()
    s.receive(data(stream.id, b"a" * F.CREDIT_BATCH))
    s.receive(F.encode(F.END, stream.id))
    assert stream.take() == b"a" * F.CREDIT_BATCH
    assert stream.take() == b""
    assert sent(s) == []


def test_a_whole_window_uncredited_is_allowed_one_byte_more_is_a_protocol_error() -> None:
    s = Session(URL)
    stream = s.inbound()
    fill_window(s, stream.id)
    assert sent(s) == []
    assert stream.error is None
    s.receive(data(stream.id, b"!"))
    [(op, sid, reason)] = sent_frames(s)
    assert (op, sid) == (F.ABORT, stream.id)  # the daemon is told to stop sending
    assert reason.decode() == f"protocol error: {F.STREAM_WINDOW + 1} bytes in flight on stream {stream.id} exceed the window of {F.STREAM_WINDOW}"
    take_window(stream)  # what arrived within the window is still read, then the error
    with pytest.raises(SandboxError, match="protocol error"):
        stream.take()
    assert sent(s) == []  # no credit for a stopped stream
    s.receive(data(stream.id, b"more"))  # it left the table: later frames are dropped
    assert sent(s) == []
    with pytest.raises(SandboxError, match="protocol error"):
        stream.take()


def test_the_window_slides_by_what_was_credited_not_by_what_was_taken() -> None:
    s = Session(URL)
    stream = s.inbound()
    fill_window(s, stream.id)
    take_window(stream)
    credits = sent_frames(s)
    assert credits == [(F.CREDIT, stream.id, credit_payload(F.MAX_CHUNK))] * FRAMES_PER_WINDOW
    fill_window(s, stream.id)  # everything was credited: a second window is fine
    assert stream.error is None
    assert sent(s) == []


def test_bytes_taken_but_not_yet_credited_still_count_against_the_window() -> None:
    s = Session(URL)
    stream = s.inbound()
    s.receive(data(stream.id, b"y" * QUARTER))
    assert stream.take() == b"y" * QUARTER
    assert sent(s) == []  # less than a batch: held back, so the daemon still counts it
    for _ in range(FRAMES_PER_WINDOW - 1):
        s.receive(data(stream.id, b"x" * F.MAX_CHUNK))
    s.receive(data(stream.id, b"x" * (F.MAX_CHUNK - QUARTER)))
    assert stream.error is None
    s.receive(data(stream.id, b"!"))
    assert [(op, sid) for op, sid, _ in sent_frames(s)] == [(F.ABORT, stream.id)]
    assert isinstance(stream.error, SandboxError)


def test_an_abort_from_the_daemon_fails_the_reader() -> None:
    s = Session(URL)
    stream = s.inbound()
    woken: list[int] = []
    stream.watch(lambda: woken.append(1))
    s.receive(data(stream.id, b"partial"))
    s.receive(F.abort(stream.id, "process gone"))
    assert woken == [1, 1]  # once per frame
    assert stream.take() == b"partial"
    with pytest.raises(SandboxError, match="stream aborted: process gone"):
        stream.take()
    assert sent(s) == []


def test_cancelling_queues_one_abort_and_drops_what_is_queued() -> None:
    s = Session(URL)
    stream = s.inbound()
    s.receive(data(stream.id, b"unread"))
    stream.cancel("not interested")
    stream.cancel("twice")
    assert sent_frames(s) == [(F.ABORT, stream.id, b"not interested")]
    assert stream.take() == b""
    s.receive(data(stream.id, b"late"))
    assert stream.take() == b""


def test_writing_stops_at_the_window_and_resumes_by_the_credit_granted() -> None:
    s = Session(URL)
    stream = s.outbound()
    woken: list[int] = []
    stream.watch(lambda: woken.append(1))
    body = memoryview(b"z" * (F.STREAM_WINDOW + 10))
    off = 0
    while not stream.blocked:
        off += stream.write_some(body[off:])
    assert off == F.STREAM_WINDOW
    assert stream.write_some(body[off:]) == 0  # nothing is queued while blocked
    frames = sent_frames(s)
    assert [(op, sid, len(p)) for op, sid, p in frames] == [(F.DATA, stream.id, F.MAX_CHUNK)] * FRAMES_PER_WINDOW
    s.receive(F.credit(stream.id, 4))
    assert woken == [1]
    assert not stream.blocked
    assert stream.write_some(body[off:]) == 4  # exactly the credit granted
    assert stream.blocked
    s.receive(F.credit(stream.id, F.STREAM_WINDOW))
    assert stream.write_some(body[off + 4 :]) == 6
    stream.end()
    assert [(op, p) for op, _, p in sent_frames(s)] == [(F.DATA, b"zzzz"), (F.DATA, b"z" * 6), (F.END, b"")]
    with pytest.raises(SandboxError, match=f"stream {stream.id} is closed"):
        stream.write_some(memoryview(b"after the end"))


def test_an_abort_from_the_daemon_unblocks_and_fails_the_writer() -> None:
    s = Session(URL)
    stream = s.outbound()
    while not stream.blocked:
        stream.write_some(memoryview(b"w" * F.MAX_CHUNK))
    sent(s)
    s.receive(F.abort(stream.id, "stdin closed"))
    assert not stream.blocked  # a waiting writer wakes to the error instead of waiting for credit
    with pytest.raises(SandboxError, match="stream closed by the sandbox: stdin closed"):
        stream.write_some(memoryview(b"x"))
    with pytest.raises(SandboxError, match="stdin closed"):
        stream.end()
    stream.abort("writer gives up")  # already ended by the daemon: nothing to send
    assert sent(s) == []
