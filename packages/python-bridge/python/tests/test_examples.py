"""Every Python example of API.md, and examples/quickstart.py, run against the real daemon."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sbx import AsyncSandbox, Sandbox

from .conftest import Daemon

# The repository's examples/ folder, beside examples/quickstart.ts.
EXAMPLES = Path(__file__).resolve().parents[4] / "examples"


def test_api_md_sync_example(daemon: Daemon) -> None:
    key = "sk-test-0123456789"
    # As written in API.md.
    with Sandbox.create(allow_net=["api.openai.com"],
                        secrets={"OPENAI_API_KEY": {"hosts": ["api.openai.com"], "value": key}},
                        memory="1GiB", timeout="5m") as sb:
        assert sb.env.get("OPENAI_API_KEY") not in (None, key)
        p = sb.spawn("python3", args=["-c", "print(1)"])
        out = p.output()                  # .status.code, .stdout (bytes), .stdout_text
        assert (out.status.code, out.stdout, out.stdout_text) == (0, b"1\n", "1\n")
        sb.fs.write_text_file("/home/user/a.txt", "hi")
        assert sb.fs.read_text_file("/home/user/a.txt") == "hi"
        listing = sb.sh("ls", "-la", "/home/user")  # returns result; raises SandboxCommandError on non-zero
        assert "a.txt" in (listing.stdout_text or "")


async def test_api_md_async_example(daemon: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        p = await sb.spawn("python3", args=["-c", "print(1)"])
        out = await p.output()
        assert out.status.code == 0 and out.stdout_text == "1\n"
        await sb.fs.write_text_file("/home/user/a.txt", "hi")
        assert await sb.fs.read_text_file("/home/user/a.txt") == "hi"
        assert "a.txt" in ((await sb.sh("ls", "-la", "/home/user")).stdout_text or "")


def test_quickstart_runs(daemon: Daemon, tmp_path: Path) -> None:
    # Checks what examples/test/examples.test.ts checks of quickstart.ts, and that the example
    # cleans up after itself: no temp dirs left in its TMPDIR, no sandbox left on the daemon.
    env = {**os.environ, "SBX_URL": daemon.url, "SBX_TOKEN": daemon.token, "TMPDIR": str(tmp_path)}
    run = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert re.search(r"^created sbx_[A-Za-z0-9_-]{20,}$", run.stdout, re.M), run.stdout
    assert re.search(r"^user on sbx, kernel ", run.stdout, re.M), run.stdout
    assert "fib: 0 1 1 2 3 5 8 13 21 34 (exit 0)" in run.stdout
    assert "sum of y computed in the sandbox: 6" in run.stdout
    assert "downloaded total.txt: 6" in run.stdout
    assert "reading /etc/shadow inside: exit 1" in run.stdout
    assert os.listdir(tmp_path) == []
    assert Sandbox.list(labels={"example": "quickstart"}) == []
