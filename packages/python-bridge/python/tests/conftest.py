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


def start_daemon() -> Daemon:
    if not CLI.exists():
        pytest.skip(f"the daemon is not built ({CLI} missing): run `pnpm build` first")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH")
    state = tempfile.mkdtemp(prefix="sbx-pytest-")
    env = {k: v for k, v in os.environ.items() if k not in ("SBX_TOKEN", "SBX_URL")}
    proc = subprocess.Popen(
        [node, str(CLI), "daemon", "--listen", "127.0.0.1:0", "--state-dir", state, "--session-grace", "1s"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    seen = b""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"daemon exited with {proc.wait()}: {err}")
        seen += line
        m = re.search(rb"listening on (ws://\S+)", seen)
        if m:
            # Keep draining output so the daemon never blocks on a full pipe.
            for pipe in (proc.stdout, proc.stderr):
                threading.Thread(target=lambda p=pipe: p.read() if p else None, daemon=True).start()
            token = (Path(state) / "token").read_text().strip()
            return Daemon(m.group(1).decode(), token, state, proc)
    proc.kill()
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
        shutil.rmtree(d.state_dir, ignore_errors=True)


@pytest.fixture
def own_daemon() -> Iterator[Daemon]:
    """A daemon of the test's own, for tests that kill it."""
    d = start_daemon()
    try:
        yield d
    finally:
        d.stop(signal.SIGKILL)
        time.sleep(0.2)
        shutil.rmtree(d.state_dir, ignore_errors=True)
