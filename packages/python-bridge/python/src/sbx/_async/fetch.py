# hand-written: the sync flavour in ../_sync/fetch.py is generated from this file
"""``sb.fetch`` and ``DenoProcess.fetch``: one HTTP/1.1 request to a server inside the sandbox,
over a TCP connection the supervisor opens on the sandbox's loopback (``net.connect``) and the
daemon relays on two streams; nothing is exposed. The parsing rules are in ``.._http``."""

from __future__ import annotations

import time
from collections.abc import Mapping

from .._errors import ResourceLimitError
from .._generated.models import ERROR_CODES
from .._http import MAX_HEAD, MAX_HEADERS, MAX_LINE, FetchResponse, HttpResponseError, chunk_size, encode_request, framing, parse_header, parse_status, target
from .streams import AsyncIncoming
from .transport import AsyncConnection

__all__ = ["fetch_inside"]

Body = bytes | bytearray | memoryview | str | None


class _Reader:
    """Buffered reads from the server's stream, against an optional deadline."""

    def __init__(self, stream: AsyncIncoming, deadline: float | None, timeout: float | None) -> None:
        self._stream = stream
        self._deadline = deadline
        self._timeout = timeout
        self._buf = bytearray()
        self.eof = False

    async def _fill(self) -> bool:
        """Reads one more chunk into the buffer; False at the end of the stream."""
        if self.eof:
            return False
        remaining = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
        chunk = await self._stream.read_within(remaining)
        if chunk is None:
            raise TimeoutError(f"fetch: no complete response within {self._timeout} s")
        if not chunk:
            self.eof = True
            return False
        self._buf += chunk
        return True

    async def line(self, what: str) -> bytes:
        """One CRLF-terminated line, without the CRLF; at most MAX_LINE bytes."""
        start = 0
        while True:
            i = self._buf.find(b"\n", start)
            if i >= 0:
                if i == 0 or self._buf[i - 1] != 0x0D:
                    raise HttpResponseError(f"the response ends a line of its {what} with a bare LF, which is refused")
                line = bytes(self._buf[: i - 1])
                del self._buf[: i + 1]
                return line
            if len(self._buf) > MAX_LINE:
                raise HttpResponseError(f"a line of the response's {what} is longer than {MAX_LINE} bytes")
            start = max(0, len(self._buf) - 1)
            if not await self._fill():
                raise HttpResponseError(f"the server inside the sandbox closed the connection in the middle of the response's {what}")

    async def exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not await self._fill():
                raise HttpResponseError(f"the server inside the sandbox closed the connection {n - len(self._buf)} bytes before the end of the body it announced")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def rest(self, limit: int) -> bytes:
        while await self._fill():
            if len(self._buf) > limit:
                break
        data = bytes(self._buf)
        self._buf.clear()
        return data


async def _fields(reader: _Reader, what: str) -> list[tuple[str, str]]:
    """Header or trailer lines up to the empty line, within MAX_HEADERS and MAX_HEAD."""
    fields: list[tuple[str, str]] = []
    size = 0
    while True:
        line = await reader.line(what)
        if not line:
            return fields
        size += len(line)
        if len(fields) >= MAX_HEADERS or size > MAX_HEAD:
            raise HttpResponseError(f"the response's {what} are over the limit ({MAX_HEADERS} lines, {MAX_HEAD} bytes)")
        fields.append(parse_header(line))


def _too_big(max_bytes: int) -> ResourceLimitError:
    return ResourceLimitError(f"the response body is longer than max_bytes ({max_bytes} bytes)", ERROR_CODES["ResourceLimit"])


async def _response(reader: _Reader, method: str, max_bytes: int) -> FetchResponse:
    while True:
        status, reason = parse_status(await reader.line("status line"))
        headers = await _fields(reader, "headers")
        if status == 101:
            raise HttpResponseError("the server inside the sandbox switched protocols (101), which fetch does not do; expose it with expose_http")
        if status >= 200:
            break  # 1xx: an interim answer (100 Continue, 103 Early Hints); the real one follows
    how = framing(status, method, headers)
    if how is None:
        body = b""
    elif how == "close":
        body = await reader.rest(max_bytes)
        if len(body) > max_bytes:
            raise _too_big(max_bytes)
    elif how == "chunked":
        parts: list[bytes] = []
        size = 0
        while True:
            n = chunk_size(await reader.line("chunk size"))
            if n == 0:
                break
            size += n
            if size > max_bytes:
                raise _too_big(max_bytes)
            parts.append(await reader.exact(n))
            if await reader.line("chunk end"):
                raise HttpResponseError("a chunk of the response is longer than its size line says")
        await _fields(reader, "trailers")
        body = b"".join(parts)
    else:
        assert isinstance(how, int)
        if how > max_bytes:
            raise _too_big(max_bytes)
        body = await reader.exact(how)
    return FetchResponse(status=status, reason=reason, raw_headers=headers, body=body)


async def fetch_inside(
    conn: AsyncConnection,
    sandbox: str,
    url: str,
    *,
    method: str,
    headers: Mapping[str, str] | None,
    body: Body,
    timeout: float | None,
    max_bytes: int,
    port: int | None,
) -> FetchResponse:
    """Sends one request to ``port`` inside the sandbox (for ``sb.fetch``, the URL's port on a
    loopback host) and reads the whole response."""
    host, url_port, path = target(url, any_host=port is not None)
    if port is None:
        port = url_port if url_port is not None else 80
    request = encode_request(method.upper() if isinstance(method, str) else method, path, host, headers, body)
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    deadline = None if timeout is None else time.monotonic() + timeout
    to_server = conn.outgoing()
    from_server = conn.incoming()
    try:
        await conn.net_connect(sandbox=sandbox, port=port, input=to_server.id, output=from_server.id)
    except BaseException as err:
        to_server.fail(err)
        from_server.fail(err)
        raise
    reader = _Reader(from_server, deadline, timeout)
    try:
        await to_server.write(request)
        return await _response(reader, method.upper(), max_bytes)
    finally:
        # The request was sent whole with Connection: close: the connection ends either way.
        await to_server.abort("fetch done")
        if not reader.eof:
            await from_server.cancel("fetch done")

