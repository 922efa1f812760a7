"""The transport's sans-I/O core on its own: calls, disconnect, notifications and exits,
fed messages by hand with no socket and no daemon."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sbx import ConnectionError, RpcError, SandboxNotFoundError
from sbx import _frames as F
from sbx._core import Session
from sbx._generated.models import ERROR_CODES, ExitStatus, ProcessExitNotification, SandboxExitNotification
from sbx._types import KILLED

from .core_helpers import URL, answer, data, failure, notification, process_exit, sent

SBX_A = "sbx_aaaaaaaaaaaaaaaaaaaaaaaa"
SBX_B = "sbx_bbbbbbbbbbbbbbbbbbbbbbbb"


def test_requests_are_queued_as_json_rpc_with_increasing_ids() -> None:
    s = Session(URL)
    first = s.request("fs.stat", {"sandbox": SBX_A, "path": "/etc"})
    second = s.request("env.get", {"sandbox": SBX_A, "name": "HOME"})
    assert (first.id, second.id) == (1, 2)
    assert [json.loads(m) for m in sent(s) if isinstance(m, str)] == [
        {"jsonrpc": "2.0", "id": 1, "method": "fs.stat", "params": {"sandbox": SBX_A, "path": "/etc"}},
        {"jsonrpc": "2.0", "id": 2, "method": "env.get", "params": {"sandbox": SBX_A, "name": "HOME"}},
    ]
    assert s.next_outgoing() is None


def test_an_answer_resolves_its_own_call_and_wakes_its_watchers() -> None:
    s = Session(URL)
    first = s.request("env.get", {})
    second = s.request("env.get", {})
    woken: list[str] = []
    first.watch(lambda: woken.append("first"))
    second.watch(lambda: woken.append("second"))
    s.receive(answer(2, {"value": "x"}))
    assert woken == ["second"]
    assert second.done and second.result() == {"value": "x"}
    assert not first.done
    with pytest.raises(RuntimeError, match="still waiting"):
        first.result()
    s.receive(answer(2, "again"))  # a second answer to a finished call changes nothing
    assert second.result() == {"value": "x"}


def test_an_error_answer_rejects_the_call_with_its_class_and_fails_its_streams() -> None:
    s = Session(URL)
    stream = s.inbound()
    other = s.inbound()
    call = s.request("fs.readFile", {"sandbox": SBX_A, "path": "/x", "stream": stream.id}, (stream.id,))
    s.receive(failure(call.id, ERROR_CODES["SandboxNotFound"], "no such sandbox"))
    with pytest.raises(SandboxNotFoundError, match="no such sandbox") as info:
        call.result()
    assert info.value.rpc_code == ERROR_CODES["SandboxNotFound"]
    with pytest.raises(SandboxNotFoundError) as from_stream:
        stream.take()
    assert from_stream.value is info.value
    assert other.take() is None  # a stream of no failed call is untouched
    s.receive(data(stream.id, b"late"))  # the failed stream left the table: its frames are dropped
    with pytest.raises(SandboxNotFoundError):
        stream.take()


def test_disconnect_rejects_every_pending_call_with_connection_error() -> None:
    s = Session(URL)
    calls = [s.request("process.spawn", {}) for _ in range(3)]
    inbound, outbound = s.inbound(), s.outbound()
    woken: list[str] = []
    s.watch(lambda: woken.append("session"))
    s.request("env.get", {})  # queued, never sent
    s.connection_lost("daemon died")
    assert woken == ["session"]
    for call in calls:
        assert call.done
        with pytest.raises(ConnectionError, match=r"closed during a call \(daemon died\)") as info:
            call.result()
        assert info.value.code == "CONNECTION_ERROR"
    with pytest.raises(ConnectionError, match="daemon died"):
        inbound.take()
    assert not outbound.blocked
    with pytest.raises(ConnectionError, match="daemon died"):
        outbound.write_some(memoryview(b"x"))
    with pytest.raises(ConnectionError, match="lost the connection before process 7 exited"):
        s.exit_status(SBX_A, 7)
    assert s.next_outgoing() is None  # what was queued is dropped: there is no socket to send it on


def test_after_a_disconnect_nothing_is_queued_and_new_calls_and_streams_fail_at_once() -> None:
    s = Session(URL)
    s.connection_lost("gone")
    s.connection_lost("a later reason")  # the first reason stays
    assert s.closed_with == "gone"
    with pytest.raises(ConnectionError, match=r"is closed \(gone\); cannot call fs.stat"):
        s.request("fs.stat", {})
    with pytest.raises(ConnectionError, match="gone"):
        s.inbound().take()  # a stream no frame can reach must not wait forever
    with pytest.raises(ConnectionError, match="gone"):
        s.outbound().end()
    assert s.next_outgoing() is None


def test_exit_statuses_are_kept_per_sandbox_and_pid_and_handed_out_once() -> None:
    s = Session(URL)
    woken: list[str] = []
    s.watch(lambda: woken.append("session"))
    s.receive(process_exit(SBX_B, 7, 3))
    assert woken == ["session"]
    assert s.exit_status(SBX_A, 7) is None  # the same pid in another sandbox is another process
    assert s.exit_status(SBX_B, 7) == ExitStatus(success=False, code=3, signal=None, oom=False)
    assert s.exit_status(SBX_B, 7) is None


def test_another_sandbox_stopping_does_not_end_our_processes() -> None:
    s = Session(URL)
    s.receive(notification("sandbox.exit", {"id": SBX_B, "reason": "timeout"}))
    assert s.exit_status(SBX_A, 8) is None
    assert s.exit_status(SBX_B, 8) == KILLED
    s.forget_sandbox(SBX_A)  # we killed it ourselves
    assert s.exit_status(SBX_A, 8) == KILLED


def test_listeners_get_decoded_notifications_until_unsubscribed() -> None:
    s = Session(URL)
    seen: list[Any] = []
    stop = s.on("process.exit", seen.append)
    s.on("sandbox.exit", seen.append)
    s.on("sandbox.warning", seen.append)
    s.receive(process_exit(SBX_A, 1, 0))
    s.receive(notification("sandbox.exit", {"id": SBX_A, "reason": "killed"}))
    s.receive(notification("sandbox.warning", {"anything": ["as", "sent"]}))
    stop()
    s.receive(process_exit(SBX_A, 2, 0))
    assert seen == [
        ProcessExitNotification(sandbox=SBX_A, pid=1, status=ExitStatus(success=True, code=0, signal=None, oom=False)),
        SandboxExitNotification(id=SBX_A, reason="killed"),
        {"anything": ["as", "sent"]},
    ]


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2]",
        json.dumps({"jsonrpc": "2.0", "id": "1", "result": 1}),  # the call ids we send are ints
        json.dumps({"jsonrpc": "2.0", "id": 99, "result": 1}),  # no such call
        notification("process.exit", {"sandbox": SBX_A}),  # no pid, no status
        F.encode(F.DATA, 0, b"x"),  # stream 0 is never used
        bytes([9, 0, 0, 0, 1]),  # no such op
        F.encode(F.CREDIT, 1, b"\x00"),  # CREDIT carries four bytes
        b"\x00",  # shorter than a header
        data(42, b"x"),  # no such stream
    ],
)
def test_malformed_or_stray_messages_are_dropped(message: str | bytes) -> None:
    s = Session(URL)
    call = s.request("env.get", {})
    stream = s.inbound()
    heard: list[Any] = []
    s.on("process.exit", heard.append)
    sent(s)
    s.receive(message)
    assert not call.done
    assert stream.take() is None
    assert heard == []
    assert s.exit_status(SBX_A, 1) is None
    assert s.next_outgoing() is None
    s.receive(answer(call.id, 5))  # and the session still works
    assert call.result() == 5


def test_an_rpc_error_without_a_known_code_is_a_plain_rpc_error() -> None:
    s = Session(URL)
    call = s.request("fs.stat", {})
    s.receive(json.dumps({"jsonrpc": "2.0", "id": call.id, "error": {"message": "odd"}}))
    with pytest.raises(RpcError, match="odd") as info:
        call.result()
    assert type(info.value) is RpcError
    assert info.value.rpc_code == ERROR_CODES["InternalError"]


def test_an_rpc_errors_code_is_its_errno_when_it_has_one_as_in_the_typescript_sdk() -> None:
    assert RpcError("no such file", -32000, {"errno": "ENOENT"}).code == "ENOENT"
    assert RpcError("odd", -32000, {"errno": 2}).code == "RPC_ERROR"
    assert RpcError("odd", -32000).code == "RPC_ERROR"
    # a subclass keeps its own code, errno or not
    assert SandboxNotFoundError("gone", -32001, {"errno": "ENOENT"}).code == "SANDBOX_NOT_FOUND"
