"""sandbox.fetch and DenoProcess.fetch, sync and async, against servers inside a sandbox: a Deno
HTTP server for the ordinary cases, and a raw TCP server sending malformed responses to show the
strict parser refuses them."""

from __future__ import annotations

import time

import pytest

from sbx import AsyncSandbox, HttpResponseError, InvalidOptionError, ResourceLimitError, RpcError, Sandbox

from .conftest import Daemon

SERVER = """
Deno.serve({ port: 8000, onListen() {} }, async (req) => {
  const url = new URL(req.url);
  if (url.pathname === "/chunked") {
    const parts = ["one ", "two ", "three"];
    return new Response(new ReadableStream({
      async pull(c) { if (parts.length) { c.enqueue(new TextEncoder().encode(parts.shift())); await new Promise((r) => setTimeout(r, 10)); } else c.close(); },
    }));
  }
  if (url.pathname === "/missing") return new Response("no such page", { status: 404 });
  if (url.pathname === "/big") return new Response("x".repeat(5000));
  return Response.json({ method: req.method, path: url.pathname + url.search, body: await req.text(),
    type: req.headers.get("content-type"), host: req.headers.get("host"), connection: req.headers.get("connection") });
});
"""

# A raw TCP server: each path gets a fixed (mostly malformed) answer, then the connection closes.
RAW = r"""
const R = {
  "/both": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "/two-lengths": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
  "/bare-lf": "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
  "/folded": "HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\nContent-Length: 0\r\n\r\n",
  "/short": "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
  "/not-http": "SSH-2.0-OpenSSH_9.6\r\n",
  "/many": "HTTP/1.1 200 OK\r\n" + "X-H: v\r\n".repeat(500) + "\r\n",
  "/close": "HTTP/1.1 200 OK\r\nX-Multi: a\r\nx-multi: b\r\n\r\nread until close",
  "/continue": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
  "/trailers": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
};
const l = Deno.listen({ port: 8001 });
for await (const c of l) {
  (async () => {
    const buf = new Uint8Array(65536);
    const n = await c.read(buf);
    const path = new TextDecoder().decode(buf.subarray(0, n ?? 0)).split(" ")[1];
    if (path === "/silent") return;  // never answers, never closes
    const out = new TextEncoder().encode(R[path] ?? "HTTP/1.1 500 Unknown\r\nContent-Length: 0\r\n\r\n");
    for (let off = 0; off < out.length; off += 7) await c.write(out.subarray(off, off + 7));  // in pieces
    c.close();
  })().catch(() => {});  // a client that hung up early must not end the server
}
"""


def _start(sb: Sandbox) -> None:
    web = sb.deno.run(code=SERVER, stdout="null", stderr="null")
    raw = sb.deno.run(code=RAW, stdout="null", stderr="null")
    assert web.http_ready(timeout=30) and raw.http_ready(timeout=30)


def test_get_post_chunked_404(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        _start(sb)
        r = sb.fetch("http://localhost:8000/hello?x=1")
        assert (r.status, r.ok, r.headers["content-type"]) == (200, True, "application/json")
        assert r.json() == {"method": "GET", "path": "/hello?x=1", "body": "", "type": None, "host": "localhost:8000", "connection": "close"}
        r = sb.fetch("http://127.0.0.1:8000/post", method="POST", headers={"Content-Type": "text/plain"}, body="héllo")
        assert r.json()["method"] == "POST" and r.json()["body"] == "héllo" and r.json()["type"] == "text/plain"
        r = sb.fetch("http://[::1]:8000/bytes", method="put", body=b"\x00\x01")
        assert r.json()["method"] == "PUT" and r.json()["body"] == "\x00\x01"
        r = sb.fetch("http://localhost:8000/chunked")
        assert r.headers.get("transfer-encoding") == "chunked" and r.text() == "one two three"
        r = sb.fetch("http://localhost:8000/missing")
        assert (r.status, r.ok, r.text()) == (404, False, "no such page")
        r = sb.fetch("http://localhost:8000/missing", method="HEAD")
        assert (r.status, r.body) == (404, b"")
        with pytest.raises(ResourceLimitError, match="max_bytes"):
            sb.fetch("http://localhost:8000/big", max_bytes=4096)
        assert len(sb.fetch("http://localhost:8000/big", max_bytes=5000).body) == 5000


def test_refused_urls_and_options(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        for url, what in [
            ("http://example.com/", "not the sandbox's own loopback"),
            ("http://10.0.0.1:8000/", "not the sandbox's own loopback"),
            ("http://localhost.evil.com:8000/", "not the sandbox's own loopback"),
            ("https://localhost:8000/", "plain http://"),
            ("ftp://localhost/", "plain http://"),
            ("/relative", "plain http://"),
            ("http://localhost:99999/", "url: "),
            ("http://localhost:0/", "port 0"),
        ]:
            with pytest.raises(InvalidOptionError, match=what):
                sb.fetch(url)
        with pytest.raises(InvalidOptionError, match="method"):
            sb.fetch("http://localhost:8000/", method="GET /x HTTP/1.1\r\nX:")
        with pytest.raises(InvalidOptionError, match="control characters"):
            sb.fetch("http://localhost:8000/", headers={"X-A": "1\r\nX-Injected: 2"})
        with pytest.raises(InvalidOptionError, match="set by fetch itself"):
            sb.fetch("http://localhost:8000/", headers={"Transfer-Encoding": "chunked"})
        with pytest.raises(InvalidOptionError, match="whitespace"):
            sb.fetch("http://localhost:8000/a b")


def test_no_server_on_the_port(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        with pytest.raises(RpcError, match="nothing accepts connections on port 8999"):
            sb.fetch("http://localhost:8999/")
        quick = sb.deno.run(code="1")
        quick.wait()
        with pytest.raises(Exception, match="listens on no TCP port"):
            quick.fetch("/")


def test_malformed_responses_refused(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        _start(sb)
        for path, what in [
            ("/both", "both Transfer-Encoding and Content-Length"),
            ("/two-lengths", "not one decimal number"),
            ("/bare-lf", "bare LF"),
            ("/folded", "folds a header"),
            ("/short", "7 bytes before the end"),
            ("/not-http", "not an HTTP/1.x status line"),
            ("/many", "over the limit"),
        ]:
            with pytest.raises(HttpResponseError, match=what):
                sb.fetch("http://localhost:8001" + path)
        r = sb.fetch("http://localhost:8001/close")
        assert (r.status, r.text(), r.headers["x-multi"]) == (200, "read until close", "a, b")
        assert r.raw_headers == [("X-Multi", "a"), ("x-multi", "b")]
        r = sb.fetch("http://localhost:8001/continue")
        assert (r.status, r.reason, r.text()) == (201, "Created", "ok")
        assert sb.fetch("http://localhost:8001/trailers").text() == "abcde"
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="within 0.5 s"):
            sb.fetch("http://localhost:8001/silent", timeout=0.5)
        assert time.monotonic() - t0 < 5
        # The daemon, the sandbox and the connection are fine afterwards.
        assert sb.fetch("http://localhost:8000/x").status == 200


def test_deno_process_fetch(daemon: Daemon) -> None:
    with Sandbox.create() as sb:
        server = sb.deno.run(code=SERVER.replace("port: 8000", "port: 8123"), stdout="null", stderr="null")
        assert server.http_ready(timeout=30)
        # The process's own port, whatever the URL's host says.
        assert server.fetch("http://anything.example/p").json()["path"] == "/p"
        assert server.fetch("/q?z=1", method="POST", body="b").json() == {"method": "POST", "path": "/q?z=1", "body": "b", "type": None, "host": "localhost", "connection": "close"}
        with pytest.raises(InvalidOptionError, match="http:// URL or a path"):
            server.fetch("ftp://x/")


async def test_async_fetch(daemon: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        web = await sb.deno.run(code=SERVER, stdout="null", stderr="null")
        raw = await sb.deno.run(code=RAW, stdout="null", stderr="null")
        assert await web.http_ready(timeout=30) and await raw.http_ready(timeout=30)
        r = await sb.fetch("http://localhost:8000/a", method="POST", body=b"data")
        assert r.json()["body"] == "data" and r.json()["method"] == "POST"
        assert (await sb.fetch("http://localhost:8000/chunked")).text() == "one two three"
        assert (await sb.fetch("http://localhost:8000/missing")).status == 404
        assert (await web.fetch("/w")).json()["path"] == "/w"
        with pytest.raises(InvalidOptionError, match="loopback"):
            await sb.fetch("http://192.168.1.1:8000/")
        with pytest.raises(RpcError, match="nothing accepts connections on port 8999"):
            await sb.fetch("http://localhost:8999/")
        with pytest.raises(HttpResponseError, match="both"):
            await sb.fetch("http://localhost:8001/both")
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="within 0.5 s"):
            await sb.fetch("http://localhost:8001/silent", timeout=0.5)
        assert time.monotonic() - t0 < 5
        # The connection is still usable after a timed-out fetch.
        assert (await sb.fetch("http://localhost:8000/after")).json()["path"] == "/after"
