"""Every Python example of API.md, and examples/quickstart.py and agent_secrets.py, run against the real daemon."""

from __future__ import annotations

import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import threading
from pathlib import Path

from sbx import AsyncSandbox, Sandbox

from .conftest import Daemon, remove_state_dir, start_daemon

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


def make_certificates(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf for ``name`` signed by it (CA, leaf certificate, leaf key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=sbx pytest CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", f"/CN={name}")
    (directory / "leaf.ext").write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem",
            "-days", "1", "-extfile", "leaf.ext")
    return directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"


def test_agent_secrets_runs(tmp_path: Path) -> None:
    # A stand-in for api.openai.com that answers only the right bearer token, reached by its
    # real name through the daemon's --resolve, its CA trusted through --extra-ca.
    api_key = "sk-pytest-agent-0123456789abcdef"
    authorizations: list[str] = []

    class StandIn(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            authorizations.append(self.headers.get("Authorization", ""))
            ok = self.headers.get("Authorization") == f"Bearer {api_key}"
            reply = {"choices": [{"message": {"role": "assistant", "content": "Hello from the Python stand-in!"}}]} if ok else {"error": "bad key"}
            body = json.dumps(reply).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server signature
            pass

    ca, cert, key = make_certificates(tmp_path, "api.openai.com")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    d = start_daemon(("--resolve", f"api.openai.com:443=127.0.0.1:{server.server_address[1]}", "--extra-ca", str(ca), "--warm-pool", "0"))
    try:
        env = {**os.environ, "SBX_URL": d.url, "SBX_TOKEN": d.token, "OPENAI_API_KEY": api_key}
        run = subprocess.run([sys.executable, str(EXAMPLES / "agent_secrets.py")], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert re.search(r"^inside, OPENAI_API_KEY is SBX_SECRET_[0-9A-Za-z]{32}$", run.stdout, re.M), run.stdout
        assert "the model says: Hello from the Python stand-in!\n" in run.stdout
        assert "exfiltration attempt answered 403\n" in run.stdout
        assert "egress log: secret OPENAI_API_KEY was sent over plain HTTP to attacker.example:80" in run.stdout
        assert '{"blocked": 1}' in run.stdout
        assert api_key not in run.stdout + run.stderr
        assert authorizations == [f"Bearer {api_key}"]
    finally:
        d.stop()
        remove_state_dir(d.state_dir)
        server.shutdown()
