"""Connection settings: URL checks, finding the CLI that starts a local daemon, port owners."""

from __future__ import annotations

import importlib
import os
import pwd
import socket
from collections.abc import Iterator

import pytest

import sbx._endpoint as endpoint
from sbx import ConnectionError, PortOwner, Sandbox

from .conftest import CLI


@pytest.mark.parametrize(
    ("url", "guess"),
    [
        ("127.0.0.1:7070", " (did you mean ws://127.0.0.1:7070?)"),
        ("localhost:7070", " (did you mean ws://localhost:7070?)"),
        ("http://127.0.0.1:7070", ""),
        ("ws://", ""),
    ],
)
def test_sbx_url_without_a_ws_scheme_is_a_connection_error_naming_it(monkeypatch: pytest.MonkeyPatch, url: str, guess: str) -> None:
    monkeypatch.setenv("SBX_URL", url)
    with pytest.raises(ConnectionError) as info:
        Sandbox.list(token="t")
    assert str(info.value) == f"SBX_URL must be a ws:// or wss:// URL, got '{url}'{guess}"


def test_the_url_argument_is_checked_too() -> None:
    with pytest.raises(ConnectionError) as info:
        Sandbox.connect("sbx_x", url="[::1]:7070", token="t")
    assert str(info.value) == "the url argument must be a ws:// or wss:// URL, got '[::1]:7070' (did you mean ws://[::1]:7070?)"


def test_the_install_recorded_the_checkout_cli() -> None:
    # The suite installs the package from this checkout (not editable): setup.py wrote where its CLI is.
    recorded = importlib.import_module("sbx._checkout")
    assert recorded.CLI == str(CLI)


def test_the_daemon_command_prefers_sbx_daemon_bin_then_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SBX_DAEMON_BIN", "/opt/sbx/cli.js")
    assert endpoint._daemon_command() == ["node", "/opt/sbx/cli.js"]
    monkeypatch.setenv("SBX_DAEMON_BIN", "/usr/local/bin/sbx")
    assert endpoint._daemon_command() == ["/usr/local/bin/sbx"]
    monkeypatch.delenv("SBX_DAEMON_BIN")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert endpoint._daemon_command() == ["node", str(CLI)]


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    yield port


def test_with_no_cli_anywhere_the_error_says_what_to_do(monkeypatch: pytest.MonkeyPatch, free_port: int) -> None:
    monkeypatch.delenv("SBX_DAEMON_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(endpoint, "_checkout_cli", lambda: None)
    url = f"ws://127.0.0.1:{free_port}"
    with pytest.raises(ConnectionError) as info:
        endpoint.ensure_daemon(endpoint.Endpoint(url, embedded=True, explicit_token=None))
    assert str(info.value) == (
        f"no sbx daemon listens at {url}, and no sbx CLI was found to start one: start a daemon yourself "
        "(`sbx daemon start`, or `node packages/daemon/dist/cli.js daemon start` in an sbx checkout after `pnpm build`), "
        "or set SBX_DAEMON_BIN to that cli.js (or to an `sbx` executable), or put `sbx` on PATH"
    )


def test_port_owner_finds_the_listening_uid_and_pid() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert endpoint.port_owner(port) == PortOwner(os.getuid(), pwd.getpwuid(os.getuid()).pw_name, os.getpid())
    assert endpoint.port_owner(port) is None
