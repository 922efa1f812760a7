"""Bound connections, against a stand-in daemon on loopback: ``Sandbox.create`` and
``Sandbox.connect`` bind their connections (``bind=new``, ``bind=<id>`` in the URL) and
``Sandbox.list`` does not; a connection a gateway's relay closes with code 4001 "host lost"
ends its calls and streams in the words the gateway uses for connections it does not relay,
in both drivers."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Iterator

import pytest
from websockets.sync.server import Server, ServerConnection, serve

from sbx import AsyncSandbox, ConnectionError, RpcError, Sandbox, SandboxError
from sbx._core import Session
from sbx._endpoint import bound_url, sandbox_bind
from sbx._generated.models import ERROR_CODES

SANDBOX = "sbx_h1_aaaaaaaaaaaaaaaaaaaaaaaa"
REASON = "host lost: the sbx daemon ws://10.0.0.7:7070 closed the connection"
INFO = {"id": SANDBOX, "labels": {}, "createdAt": "2026-12-06T00:00:00.000Z", "expiresAt": "2026-12-06T01:00:00.000Z", "status": "running"}


class LostHost:
    """Answers sandbox.create/connect/list; any other call makes it act as a relay whose daemon
    went away: a sandbox.exit for the sandbox, then close 4001 with the reason."""

    def __init__(self) -> None:
        self.paths: queue.Queue[str] = queue.Queue()
        self.server: Server = serve(self._handle, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.paths.put(ws.request.path)
        for message in ws:
            if isinstance(message, bytes):
                continue
            msg = json.loads(message)
            answers: dict[str, object] = {"sandbox.create": {**INFO, "warnings": []}, "sandbox.connect": INFO, "sandbox.list": [], "sandbox.kill": None}
            if msg["method"] in answers:
                ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": answers[msg["method"]]}))
                continue
            ws.send(json.dumps({"jsonrpc": "2.0", "method": "sandbox.exit", "params": {"id": SANDBOX, "reason": "error", "message": REASON}}))
            ws.close(4001, REASON)
            return


@pytest.fixture
def host() -> Iterator[LostHost]:
    h = LostHost()
    try:
        yield h
    finally:
        h.server.shutdown()


def test_bound_url_sets_bind_once_and_keeps_the_rest() -> None:
    assert bound_url("ws://h:7070", None) == "ws://h:7070"
    assert bound_url("ws://h:7070", "new") == "ws://h:7070?bind=new"
    assert bound_url("wss://h/sbx/?a=1&bind=old", SANDBOX) == f"wss://h/sbx/?a=1&bind={SANDBOX}"


def test_create_and_connect_bind_their_connections_list_does_not(host: LostHost) -> None:
    with Sandbox.create(url=host.url, token="t") as sb:
        assert host.paths.get(timeout=5) == "/?bind=new"
        assert sb.id == SANDBOX
    Sandbox.connect(SANDBOX, url=host.url, token="t").close()
    assert host.paths.get(timeout=5) == f"/?bind={SANDBOX}"
    # An id no daemon could have made goes unbound: the daemon answers SandboxNotFound, not a refused upgrade.
    assert sandbox_bind("not-an-id") is None and sandbox_bind("sbx_" + "a" * 200) is None and sandbox_bind(SANDBOX) == SANDBOX
    assert Sandbox.list(url=host.url, token="t") == []
    assert host.paths.get(timeout=5) == "/"


def test_sync_host_lost_close_gives_the_gateways_words(host: LostHost) -> None:
    sb = Sandbox.connect(SANDBOX, url=host.url, token="t")
    with pytest.raises(RpcError) as caught:
        sb.fs.stat(".")
    assert caught.value.rpc_code == ERROR_CODES["Unavailable"]
    assert str(caught.value) == "host lost during fs.stat: the sbx daemon ws://10.0.0.7:7070 closed the connection"
    with pytest.raises(ConnectionError):
        sb.fs.stat(".")  # the connection is gone for good
    sb.close()


def test_async_host_lost_close_gives_the_gateways_words(host: LostHost) -> None:
    async def run() -> None:
        sb = await AsyncSandbox.connect(SANDBOX, url=host.url, token="t")
        with pytest.raises(RpcError) as caught:
            await sb.fs.stat(".")
        assert caught.value.rpc_code == ERROR_CODES["Unavailable"]
        assert str(caught.value) == "host lost during fs.stat: the sbx daemon ws://10.0.0.7:7070 closed the connection"
        await sb.close()

    asyncio.run(run())


def test_session_core_host_lost_and_other_closes() -> None:
    lost = Session("ws://gw")
    call = lost.request("process.spawn", {"sandbox": SANDBOX})
    stream = lost.inbound()
    lost.connection_lost("closed with code 4001", 4001, REASON)
    with pytest.raises(RpcError, match=r"^host lost during process\.spawn: the sbx daemon ws://10\.0\.0\.7:7070 closed the connection$"):
        call.result()
    with pytest.raises(SandboxError, match=r"^stream aborted: host lost: the sbx daemon"):
        stream.take()

    # Any other close (or a 4001 without the prefix) stays a plain lost connection.
    for code, reason in ((1006, ""), (4001, "something else"), (1011, REASON)):
        other = Session("ws://gw")
        c = other.request("fs.stat", {"sandbox": SANDBOX, "path": "."})
        other.connection_lost(f"closed with code {code}", code, reason)
        with pytest.raises(ConnectionError):
            c.result()
