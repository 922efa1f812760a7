"""A real `sbx daemon` on a free port with its own state dir, shared by the whole session."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
CLI = REPO / "packages" / "daemon" / "dist" / "cli.js"


@dataclass
class Daemon:
    url: str
    token: str
    state_dir: str
    proc: subprocess.Popen[bytes]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


def mounts_under(state: str) -> list[str]:
    """The lines of /proc/self/mountinfo naming ``state`` (root-mode storage is mounted below it)."""
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if state in line]


def holders(state: str) -> list[int]:
    """Processes whose command line names ``state``: the daemon and, after it dies, its reaper."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if state.encode() in Path("/proc", entry, "cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def remove_state_dir(state: str) -> None:
    """Removes a daemon's state dir once nothing is mounted below it and no process of that
    daemon is left: it unmounts its sandboxes' storage as it exits, and after a SIGKILL its
    reaper does (removing the mount points as it goes)."""
    deadline = time.monotonic() + 15
    while (mounts_under(state) or holders(state)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = mounts_under(state)
    if left:
        # A mount that outlived the daemon: detach it rather than delete files through it.
        for line in reversed(left):
            subprocess.run(["umount", "--lazy", line.split()[4]], check=False)
        assert not mounts_under(state), f"still mounted under {state}: {mounts_under(state)}"
    for _ in range(20):
        try:
            shutil.rmtree(state)
            return
        except FileNotFoundError:
            time.sleep(0.05)  # something else was removing entries at the same time
    shutil.rmtree(state)


def start_daemon(extra_args: tuple[str, ...] = ()) -> Daemon:
    if not CLI.exists():
        pytest.fail(f"the daemon is not built ({CLI} missing): run `pnpm build` first")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH")
    state = tempfile.mkdtemp(prefix="sbx-pytest-")
    env = {k: v for k, v in os.environ.items() if k not in ("SBX_TOKEN", "SBX_URL")}
    proc = subprocess.Popen(
        [node, str(CLI), "daemon", "--listen", "127.0.0.1:0", "--state-dir", state, "--session-grace", "1s", *extra_args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    seen = b""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read().decode() if proc.stderr else ""
            code = proc.wait()
            remove_state_dir(state)
            raise RuntimeError(f"daemon exited with {code}: {err}")
        seen += line
        m = re.search(rb"listening on (ws://\S+)", seen)
        if m:
            # Keep draining output so the daemon never blocks on a full pipe.
            for pipe in (proc.stdout, proc.stderr):
                threading.Thread(target=lambda p=pipe: p.read() if p else None, daemon=True).start()
            token = (Path(state) / "token").read_text().strip()
            return Daemon(m.group(1).decode(), token, state, proc)
    proc.kill()
    proc.wait()
    remove_state_dir(state)
    raise RuntimeError("daemon did not start listening within 60s")


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    d = start_daemon()
    saved = {k: os.environ.get(k) for k in ("SBX_URL", "SBX_TOKEN")}
    os.environ["SBX_URL"] = d.url
    os.environ["SBX_TOKEN"] = d.token
    try:
        yield d
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        d.stop()
        remove_state_dir(d.state_dir)


@pytest.fixture
def own_daemon() -> Iterator[Daemon]:
    """A daemon of the test's own, for tests that kill it."""
    d = start_daemon()
    try:
        yield d
    finally:
        d.stop(signal.SIGKILL)
        remove_state_dir(d.state_dir)
