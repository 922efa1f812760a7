"""deno.run, http_ready and expose_http, sync and async, against a real daemon."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from sbx import AsyncSandbox, DenoProcess, NotSupportedError, Sandbox

from .conftest import Daemon

SERVER = 'Deno.serve({ port: 8000, onListen() {} }, (req) => Response.json({ path: new URL(req.url).pathname, auth: req.headers.get("x-sbx-token") }))'


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_run_http_ready_expose(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        server = sb.deno.run(code=SERVER, stdout="null", stderr="null")
        assert isinstance(server, DenoProcess)
        assert server.http_ready(timeout=30) is True
        url = sb.expose_http(8000)
        token = url.rstrip("/").rsplit("/", 1)[1]
        status, body = _get(url + "hello")
        assert status == 200
        assert json.loads(body) == {"path": "/hello", "auth": None}
        # Without the token, with another, or with the daemon's own: refused.
        origin = url[: url.index(token) - 1]
        assert _get(origin + "/hello")[0] == 401
        assert _get(origin + "/" + "B" * 32 + "/hello")[0] == 401
        assert _get(origin + "/hello", {"Authorization": f"Bearer {daemon.token}"})[0] == 401
        assert _get(origin + "/hello", {"X-Sbx-Token": token})[0] == 200
        public = sb.expose_http(pid=server.pid, public=True)
        assert _get(public + "open")[0] == 200
        with pytest.raises(NotSupportedError, match="not supported"):
            sb.expose_ssh()


def test_http_ready_false_and_bad_options(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        quick = sb.deno.run(code="console.log(1)")
        assert quick.http_ready() is False
        with pytest.raises(ValueError, match="exactly one"):
            sb.deno.run()
        with pytest.raises(ValueError, match="exactly one"):
            sb.expose_http()


async def test_async_run_and_expose(daemon: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        await sb.fs.write_text_file("main.ts", SERVER)
        server = await sb.deno.run(entrypoint="main.ts", stdout="null", stderr="null")
        assert await server.http_ready(timeout=30)
        url = await sb.expose_http(8000)
        assert _get(url + "x")[0] == 200
        await server.kill("SIGKILL")
