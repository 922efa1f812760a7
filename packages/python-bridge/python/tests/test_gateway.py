"""The Python SDK, unchanged, through the fleet gateway in front of two daemons."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sbx import AsyncSandbox, Client, InUseError, InvalidOptionError, Sandbox, SandboxNotFoundError

from .conftest import CLI, REPO, remove_state_dir

GATEWAY_CLI = REPO / "packages" / "gateway" / "dist" / "cli.js"


@dataclass
class Fleet:
    url: str
    tenant: str
    other: str


def _start(args: list[str], env: dict[str, str], pattern: bytes, ready: list[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    """Starts a node CLI; returns once stdout shows `pattern` and stderr every line of `ready`."""
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    url = ""
    deadline = time.monotonic() + 60
    out = b""
    while not url and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{args[1]} exited: {proc.stderr.read().decode()}")
        out += line
        m = re.search(rb"listening on (ws://\S+)", out)
        url = m.group(1).decode() if m else ""
    err = b""
    while any(r not in err for r in ready) and time.monotonic() < deadline:
        err += proc.stderr.readline()
    assert url and all(r in err for r in ready), f"not ready: {err.decode()}"
    for pipe in (proc.stdout, proc.stderr):
        threading.Thread(target=lambda p=pipe: p.read(), daemon=True).start()
    return proc, url


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    for built in (CLI, GATEWAY_CLI):
        if not built.exists():
            pytest.fail(f"{built} is missing: run `pnpm build` first")
    node = shutil.which("node")
    assert node is not None
    work = tempfile.mkdtemp(prefix="sbx-pytest-fleet-")
    tenant, other, operator = (f"{n}-{secrets.token_urlsafe(18)}" for n in ("tenant", "other", "operator"))
    Path(work, "tokens").write_text(f"{tenant}\n{other}\n")
    Path(work, "operator").write_text(f"{operator}\n")
    Path(work, "daemon.json").write_text(f'{{"tokensFile": "{work}/tokens", "warmPool": 0}}')
    env = {k: v for k, v in os.environ.items() if k not in ("SBX_TOKEN", "SBX_URL")}
    procs: list[subprocess.Popen[bytes]] = []
    states: list[str] = []
    try:
        urls = []
        for i in range(2):
            state = tempfile.mkdtemp(prefix="sbx-pytest-")
            states.append(state)
            args = [node, str(CLI), "daemon", "--listen", "127.0.0.1:0", "--state-dir", state, "--config", f"{work}/daemon.json", "--id-prefix", f"p{i}"]
            proc, url = _start(args, {**env, "SBX_TOKEN": operator}, rb"listening on", [])
            procs.append(proc)
            urls.append(url)
        gw_args = [node, str(GATEWAY_CLI), "--listen", "127.0.0.1:0", "--tokens-file", f"{work}/tokens", "--daemon-token-file", f"{work}/operator"]
        for url in urls:
            gw_args += ["--daemon", url]
        gw, gw_url = _start(gw_args, env, rb"listening on", [b"up: sandbox ids sbx_p0_", b"up: sandbox ids sbx_p1_"])
        procs.append(gw)
        yield Fleet(gw_url, tenant, other)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        for state in states:
            remove_state_dir(state)
        shutil.rmtree(work, ignore_errors=True)


def test_sync_sdk_through_the_gateway(fleet: Fleet) -> None:
    made = [Sandbox.create(url=fleet.url, token=fleet.tenant, timeout="5m", labels={"via": "gateway"}) for _ in range(2)]
    try:
        # Placement spreads them; the id names the host.
        assert sorted(sb.id[:7] for sb in made) == ["sbx_p0_", "sbx_p1_"]
        for sb in made:
            out = sb.spawn("python3", args=["-c", "import sys; print(6 * 7); print('e', file=sys.stderr)"]).output()
            assert (out.status.code, out.stdout_text, out.stderr_text) == (0, "42\n", "e\n")
            data = bytes(range(256)) * 8000
            sb.fs.write_file("b.bin", data)
            assert sb.fs.read_file("b.bin") == data
            assert sb.sh("hostname").stdout_text == "sbx\n"
        with tempfile.TemporaryDirectory() as local:
            Path(local, "up").mkdir()
            Path(local, "up", "x.txt").write_text("tree")
            made[0].fs.upload(Path(local, "up"), "tree")
            made[0].fs.download("tree", Path(local, "down"))
            assert Path(local, "down", "x.txt").read_text() == "tree"
        listed = {s.id for s in Sandbox.list(url=fleet.url, token=fleet.tenant, labels={"via": "gateway"})}
        assert listed == {sb.id for sb in made}
        # Another tenant sees none of them, on any host.
        assert not any(s.id in listed for s in Sandbox.list(url=fleet.url, token=fleet.other))
        with pytest.raises(SandboxNotFoundError):
            Sandbox.connect(made[0].id, url=fleet.url, token=fleet.other)
    finally:
        for sb in made:
            sb.kill()


async def test_async_sdk_through_the_gateway(fleet: Fleet) -> None:
    async with await AsyncSandbox.create(url=fleet.url, token=fleet.tenant) as sb:
        p = await sb.spawn("cat", stdin="piped")
        await p.write_stdin("through the gateway")
        await p.close_stdin()
        assert p.stdout is not None
        assert b"".join([c async for c in p.stdout]) == b"through the gateway"
        outs = await asyncio.gather(*(sb.sh("echo", str(i)) for i in range(5)))
        assert [o.text() for o in outs] == [str(i) for i in range(5)]


def test_volumes_through_the_gateway(fleet: Fleet) -> None:
    client = Client(url=fleet.url, token=fleet.tenant)
    vol = client.volumes.create("py-fleet", "32MiB")
    try:
        # The id names the host the volume lives on; the slug finds it there.
        host = vol.id[:7]
        assert host in ("vol_p0_", "vol_p1_")
        found = client.volumes.get("py-fleet")
        assert found is not None and found.id == vol.id
        assert client.volumes.get("py-nowhere") is None
        with pytest.raises(InvalidOptionError, match="'py-fleet' is already the slug of a volume or snapshot of this token"):
            client.volumes.create("py-fleet", "32MiB")
        # A sandbox mounting it is made on its host.
        with Sandbox.create(url=fleet.url, token=fleet.tenant, volumes={"/data": "py-fleet"}) as sb:
            assert sb.id.startswith("sbx_" + host[4:])
            sb.sh("echo kept > /data/f")
        assert [v.id for v in client.volumes.list(search="py-fleet").items] == [vol.id]
        assert Client(url=fleet.url, token=fleet.other).volumes.get("py-fleet") is None
    finally:
        for _ in range(100):
            try:
                client.volumes.delete(vol.id)
                break
            except InUseError:
                time.sleep(0.05)
    assert client.volumes.get("py-fleet") is None
