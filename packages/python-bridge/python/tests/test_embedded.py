"""The embedded default: with no url configured and nothing listening at the default URL, the
client starts a local daemon itself, and the next client reuses it."""

from __future__ import annotations

import os
import re
import shutil
import signal
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
def netns() -> Iterator[list[str]]:
    """A network namespace of the test's own, with only loopback: the client's default URL is
    127.0.0.1:7070, where the user's own daemon (the README's quick start leaves one) may listen.
    Yields the command prefix that runs a program in it (nsenter, not `ip netns exec`, which
    mounts a fresh /sys and so hides the cgroup file systems from the daemon)."""
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not on PATH (iproute2 / util-linux; scripts/install.sh installs them)")
    name = f"sbx-embedded-py-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield ["nsenter", f"--net=/run/netns/{name}", "--"]
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


PORT_OPEN = "import socket, sys; s = socket.socket(); sys.exit(0 if s.connect_ex(('127.0.0.1', 7070)) == 0 else 1)"


@pytest.fixture
def state_dir() -> Iterator[str]:
    if not CLI.exists():
        pytest.fail(f"the daemon is not built ({CLI} missing): run `pnpm build` first")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH")
    state = tempfile.mkdtemp(prefix="sbx-embedded-")
    try:
        yield state
    finally:
        try:
            stop_daemon(state)
        finally:
            remove_state_dir(state)


def test_starts_a_local_daemon_when_none_listens_then_reuses_it(state_dir: str, netns: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SBX_URL", "SBX_TOKEN")}
    env.update(SBX_STATE_DIR=state_dir, SBX_DAEMON_BIN=str(CLI))

    def port_open() -> bool:
        return subprocess.run([*netns, sys.executable, "-c", PORT_OPEN]).returncode == 0

    assert not port_open()

    # The first client has neither SBX_DAEMON_BIN nor `sbx` on PATH: it starts the CLI of the
    # checkout it was installed from (recorded by setup.py), as after the README's quick start.
    bare = {**env, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    del bare["SBX_DAEMON_BIN"]
    assert shutil.which("sbx", path=bare["PATH"]) is None
    first = subprocess.run([*netns, sys.executable, "-c", ASYNC_SCRIPT], env=bare, capture_output=True, text=True, timeout=90, cwd=tempfile.gettempdir())
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(r"embedded sbx_[A-Za-z0-9_-]{20,}\n", first.stdout), first.stdout
    pid = int(Path(state_dir, "daemon.pid").read_text().strip())
    assert not gone(pid)
    assert str(CLI).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert port_open()

    second = subprocess.run([*netns, sys.executable, "-c", SYNC_SCRIPT], env=env, capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("embedded sbx_")
    assert second.stdout != first.stdout
    assert int(Path(state_dir, "daemon.pid").read_text().strip()) == pid
    assert "listening on ws://127.0.0.1:7070" in Path(state_dir, "daemon.log").read_text()
    assert Path(state_dir, "token").stat().st_mode & 0o077 == 0
