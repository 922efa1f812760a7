"""Both drivers against a stand-in daemon that breaks flow control: a real WebSocket on
loopback (the real daemon never overruns a window, so it cannot show this)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Iterator

import pytest
from websockets.sync.server import Server, ServerConnection, serve

from sbx import SandboxError
from sbx import _frames as F
from sbx._async.transport import AsyncConnection
from sbx._sync.transport import Connection

SANDBOX = "sbx_aaaaaaaaaaaaaaaaaaaaaaaa"


class Rogue:
    """Answers fs.readFile by sending one byte more than a window on its stream, then the
    call's result, and records the frames the client sends back. The client takes nothing
    before the result arrives, so none of that was credited."""

    def __init__(self) -> None:
        self.frames: queue.Queue[tuple[int, int, bytes]] = queue.Queue()
        self.server: Server = serve(self._handle, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handle(self, ws: ServerConnection) -> None:
        for message in ws:
            if isinstance(message, bytes):
                frame = F.decode(message)
                assert frame is not None
                self.frames.put(frame)
                continue
            stream = json.loads(message)["params"]["stream"]
            for _ in range(F.STREAM_WINDOW // F.MAX_CHUNK):
                ws.send(F.encode(F.DATA, stream, b"x" * F.MAX_CHUNK))
            ws.send(F.encode(F.DATA, stream, b"!"))
            ws.send(json.dumps({"jsonrpc": "2.0", "id": json.loads(message)["id"], "result": {"size": F.STREAM_WINDOW + 1}}))

    def abort_received(self) -> tuple[int, int, bytes]:
        """The next frame the client sent (the test fails after 5 s without one)."""
        return self.frames.get(timeout=5)


@pytest.fixture
def rogue() -> Iterator[Rogue]:
    r = Rogue()
    try:
        yield r
    finally:
        r.server.shutdown()


def test_sync_driver_stops_a_stream_that_overruns_its_window(rogue: Rogue) -> None:
    conn = Connection.open(rogue.url, "token")
    try:
        stream = conn.incoming()
        conn.start_fs_read_file(sandbox=SANDBOX, path="/big", stream=stream.id).result()
        # The daemon is told before anyone reads the stream.
        op, sid, reason = rogue.abort_received()
        assert (op, sid) == (F.ABORT, stream.id)
        assert reason.startswith(b"protocol error:")
        with pytest.raises(SandboxError, match=f"exceed the window of {F.STREAM_WINDOW}"):
            conn.collect([stream])
    finally:
        conn.close()


async def test_async_driver_stops_a_stream_that_overruns_its_window(rogue: Rogue) -> None:
    conn = await AsyncConnection.open(rogue.url, "token")
    try:
        stream = conn.incoming()
        await (await conn.start_fs_read_file(sandbox=SANDBOX, path="/big", stream=stream.id)).result()
        # The daemon is told before anyone reads the stream.
        op, sid, reason = await asyncio.to_thread(rogue.abort_received)
        assert (op, sid) == (F.ABORT, stream.id)
        assert reason.startswith(b"protocol error:")
        with pytest.raises(SandboxError, match=f"exceed the window of {F.STREAM_WINDOW}"):
            await conn.collect([stream])
    finally:
        await conn.close()
