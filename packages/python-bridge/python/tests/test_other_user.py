"""Two users on one host: another user's daemon holds 127.0.0.1:7070, and this user's client
(default URL, token from its own token file) is refused. The error must say whose daemon that is
and how to run one's own. The other daemon is a real one, run as a system user made for this
test, in a network namespace of the test's own (7070 on the host may be anybody's)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import CLI, remove_state_dir

USER = "sbx-otheruser-py"

SCRIPT = """
import json
from sbx import AuthError, Sandbox

try:
    Sandbox.list()
except AuthError as err:
    owner = err.port_owner
    print(json.dumps({"message": str(err), "source": err.token_source,
                      "owner": [owner.uid, owner.user, owner.pid] if owner else None}))
"""


@dataclass
class OtherDaemon:
    uid: int
    pid: int
    netns: list[str]


def _user() -> tuple[int, bool]:
    found = subprocess.run(["id", "-u", USER], capture_output=True, text=True)
    if found.returncode == 0:
        return int(found.stdout), False
    made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], capture_output=True, text=True)
    if made.returncode not in (0, 9):  # 9: a concurrent run made it a moment ago
        pytest.fail(f"useradd {USER} failed: {made.stderr}")
    return int(subprocess.run(["id", "-u", USER], capture_output=True, text=True, check=True).stdout), True


def _remove_user() -> None:
    """Removes the user unless a process of another run still uses it (that run removes it then)."""
    for _ in range(40):
        code = subprocess.run(["userdel", USER], capture_output=True).returncode
        if code in (0, 6):
            return
        assert code == 8, f"userdel {USER} failed with {code}"
        time.sleep(0.05)


@pytest.fixture
def other_daemon() -> Iterator[OtherDaemon]:
    if os.getuid() != 0:
        pytest.fail("this test runs a daemon as another user and must run as root (the suite does)")
    for tool in ("ip", "nsenter", "setpriv", "useradd"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not on PATH (scripts/install.sh installs it)")
    uid, _ = _user()
    name = f"sbx-other-py-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    netns = ["nsenter", f"--net=/run/netns/{name}", "--"]
    home = Path(tempfile.mkdtemp(prefix="sbx-other-py-"))
    proc: subprocess.Popen[str] | None = None
    try:
        home.chmod(0o755)
        # dist/ whole, as a user would copy it: whatever the daemon needs beside its cli.js is there.
        shutil.copytree(CLI.parent, home, dirs_exist_ok=True)
        (home / "state").mkdir(mode=0o700)
        os.chown(home / "state", uid, uid)
        node = shutil.which("node")
        assert node is not None
        proc = subprocess.Popen(
            [*netns, "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", node, str(home / "cli.js"), "daemon",
             "--listen", "127.0.0.1:7070", "--state-dir", str(home / "state"), "--warm-pool", "0"],
            cwd=home, env={"PATH": os.environ["PATH"], "HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert proc.stdout is not None
        seen = ""
        while "listening on" not in seen:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"the other user's daemon exited: {seen}")
            seen += line
        yield OtherDaemon(uid, proc.pid, netns)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        subprocess.run(["ip", "netns", "delete", name], check=True)
        remove_state_dir(str(home))
        _remove_user()


def test_a_refusal_names_the_other_users_daemon_and_how_to_run_ones_own(other_daemon: OtherDaemon) -> None:
    mine = tempfile.mkdtemp(prefix="sbx-my-state-py-")
    try:
        Path(mine, "token").write_text("my-own-token-from-my-own-daemon-0123\n")
        env = {k: v for k, v in os.environ.items() if k not in ("SBX_URL", "SBX_TOKEN")}
        env["SBX_STATE_DIR"] = mine
        res = subprocess.run([*other_daemon.netns, sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout)
        assert got == {
            "message": f"the daemon at ws://127.0.0.1:7070 refused the token from {mine}/token (HTTP 401): "
            f"127.0.0.1:7070 belongs to another user's sbx daemon ({USER}, uid {other_daemon.uid}, pid {other_daemon.pid}), which has its own token. "
            "Run your own on another port: `sbx daemon start --listen 127.0.0.1:7071`, then set SBX_URL=ws://127.0.0.1:7071",
            "source": "file",
            "owner": [other_daemon.uid, USER, other_daemon.pid],
        }
        # A token set on purpose gets no such guess.
        env["SBX_TOKEN"] = "a-token-i-chose-myself"
        res = subprocess.run([*other_daemon.netns, sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
        assert re.search(r"refused the token in SBX_TOKEN \(HTTP 401\): pass token=\.\.\. or set SBX_TOKEN", res.stdout), res.stdout
    finally:
        shutil.rmtree(mine)
