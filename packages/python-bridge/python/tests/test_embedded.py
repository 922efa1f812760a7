"""The embedded default: with no url configured and nothing listening at the default URL, the
client starts a local daemon itself, and the next client reuses it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import CLI, remove_state_dir

ASYNC_SCRIPT = """
import asyncio
from sbx import AsyncSandbox

async def main() -> None:
    async with await AsyncSandbox.create() as sb:
        print((await sb.sh("echo embedded", sb.id)).text())

asyncio.run(main())
"""

SYNC_SCRIPT = """
from sbx import Sandbox

with Sandbox.create() as sb:
    print(sb.sh("echo embedded", sb.id).text())
"""


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet (it is not our child)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def stop_daemon(state: str) -> None:
    """SIGTERMs the daemon whose pid is in <state>/daemon.pid and waits for it to exit; it kills
    its sandboxes and unmounts their storage on the way out."""
    try:
        pid = int(Path(state, "daemon.pid").read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if str(CLI).encode() not in cmdline:
        return  # a stale pid file: that number belongs to someone else now
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while not gone(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"the embedded daemon (pid {pid}) did not exit within 30s of SIGTERM")
        time.sleep(0.05)


@pytest.fixture
def state_dir() -> Iterator[str]:
    if not CLI.exists():
        pytest.fail(f"the daemon is not built ({CLI} missing): run `pnpm build` first")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH")
    if port_open(7070):
        pytest.fail("something already listens on 127.0.0.1:7070; stop it to run this test (it checks the client's default URL)")
    state = tempfile.mkdtemp(prefix="sbx-embedded-")
    try:
        yield state
    finally:
        try:
            stop_daemon(state)
        finally:
            remove_state_dir(state)


def test_starts_a_local_daemon_when_none_listens_then_reuses_it(state_dir: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SBX_URL", "SBX_TOKEN")}
    env.update(SBX_STATE_DIR=state_dir, SBX_DAEMON_BIN=str(CLI))

    first = subprocess.run([sys.executable, "-c", ASYNC_SCRIPT], env=env, capture_output=True, text=True, timeout=90)
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(r"embedded sbx_[A-Za-z0-9_-]{20,}\n", first.stdout), first.stdout
    pid = int(Path(state_dir, "daemon.pid").read_text().strip())
    assert not gone(pid)
    assert port_open(7070)

    second = subprocess.run([sys.executable, "-c", SYNC_SCRIPT], env=env, capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("embedded sbx_")
    assert second.stdout != first.stdout
    assert int(Path(state_dir, "daemon.pid").read_text().strip()) == pid
    assert "listening on ws://127.0.0.1:7070" in Path(state_dir, "daemon.log").read_text()
    assert Path(state_dir, "token").stat().st_mode & 0o077 == 0
