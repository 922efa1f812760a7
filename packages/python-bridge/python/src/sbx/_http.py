"""The I/O-free half of ``sandbox.fetch``: checking the URL, writing an HTTP/1.1 request, and
parsing a response's head strictly (the reading is in ``_async/fetch.py``).

The server inside the sandbox is untrusted: every line, header count and body size has a limit,
and anything ambiguous (both Content-Length and Transfer-Encoding, differing Content-Lengths,
folded headers, bare LF line ends) is refused rather than guessed at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._errors import InvalidOptionError, SandboxError
from ._generated.models import ERROR_CODES

__all__ = ["FetchResponse", "HttpResponseError", "target", "encode_request", "parse_status", "parse_header", "framing", "chunk_size"]

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
#: The longest status, header, chunk-size or trailer line accepted.
MAX_LINE = 16 * 1024
#: The most header (or trailer) lines in a response.
MAX_HEADERS = 128
#: All header lines together.
MAX_HEAD = 64 * 1024

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STATUS = re.compile(rb"^HTTP/1\.([01]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?$")
_VALUE = re.compile(rb"^[\t\x20-\x7e\x80-\xff]*$")
_CHUNK = re.compile(rb"^([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?$")
# Set by fetch itself: the request's framing is not the caller's to choose.
_RESERVED = frozenset({"connection", "content-length", "transfer-encoding"})


class HttpResponseError(SandboxError):
    """The server inside the sandbox sent something that is not a valid HTTP/1.1 response (or
    over a limit), or closed the connection before the response ended."""

    code = "HTTP_RESPONSE_ERROR"


@dataclass
class FetchResponse:
    """A response from a server inside the sandbox, read whole."""

    #: The status code (200, 404, ...).
    status: int
    #: The reason phrase of the status line ("OK"), possibly empty.
    reason: str
    #: The header fields in the order received, names as the server spelled them.
    raw_headers: list[tuple[str, str]]
    #: The body (empty for HEAD, 204 and 304).
    body: bytes
    #: Header names in lower case; repeated fields joined with ", ".
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        joined: dict[str, str] = {}
        for name, value in self.raw_headers:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        self.headers = joined

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded (UTF-8 unless told otherwise; invalid bytes raise UnicodeDecodeError)."""
        return self.body.decode(encoding)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def _invalid(message: str) -> InvalidOptionError:
    return InvalidOptionError(message, ERROR_CODES["InvalidParams"])


def target(url: str, *, any_host: bool) -> tuple[str, int | None, str]:
    """(Host header, port or None when the URL names none, request target) of ``url``.
    Without ``any_host`` (``sandbox.fetch``) only http:// on the sandbox's loopback is accepted."""
    if not isinstance(url, str):
        raise _invalid(f"url: expected a string, got {type(url).__name__}")
    parts = urlsplit(url)
    if any_host and not parts.scheme and url.startswith("/"):
        return "localhost", None, url
    if not any_host and parts.scheme != "http":
        raise _invalid(f"url: {parts.scheme or 'a relative URL'}{':' if parts.scheme else ''} is not served; servers inside the sandbox are reached over plain http:// (http://localhost:PORT/...)")
    if any_host and parts.scheme not in ("http", "https"):
        raise _invalid(f"url: expected an http:// URL or a path starting with /, got {url!r}")
    host = parts.hostname
    if not host:
        raise _invalid(f"url: {url!r} names no host")
    if not any_host and host not in LOOPBACK:
        raise _invalid(f"url: {host} is not the sandbox's own loopback; sandbox.fetch reaches servers inside it (http://localhost:PORT/...)")
    try:
        port = parts.port
    except ValueError as err:
        raise _invalid(f"url: {err}") from None
    if port == 0:
        raise _invalid("url: port 0 is not a port a server listens on")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(c in path for c in " \r\n\t\0"):
        raise _invalid(f"url: the path {path!r} holds whitespace or control characters; percent-encode them")
    return parts.netloc.rsplit("@", 1)[-1], port, path


def encode_request(method: str, path: str, host: str, headers: Mapping[str, str] | None, body: bytes | bytearray | memoryview | str | None) -> bytes:
    """The request's bytes: head (with ``Connection: close`` and, for a body, ``Content-Length``) and body."""
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise _invalid(f"method: {method!r} is not an HTTP method name")
    data = body.encode() if isinstance(body, str) else bytes(body) if body is not None else None
    lines = [f"{method} {path} HTTP/1.1"]
    given: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise _invalid(f"headers: {name!r} is not a header name")
        if not isinstance(value, str) or not _VALUE.match(value.encode("utf-8")) or value != value.strip(" \t"):
            raise _invalid(f"headers: the value of {name} holds control characters or surrounding whitespace")
        if name.lower() in _RESERVED:
            raise _invalid(f"headers: {name} is set by fetch itself (the request is sent whole, then the connection closes)")
        given[name.lower()] = name
    if "host" not in given:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append("Connection: close")
    if data is not None:
        lines.append(f"Content-Length: {len(data)}")
    return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + (data or b"")


def parse_status(line: bytes) -> tuple[int, str]:
    """(status, reason) of a status line (without its CRLF)."""
    m = _STATUS.match(line)
    if not m:
        raise HttpResponseError(f"the server inside the sandbox answered with {line[:80]!r}, not an HTTP/1.x status line")
    return int(m.group(2)), (m.group(3) or b"").decode("latin-1")


def parse_header(line: bytes) -> tuple[str, str]:
    """(name, value) of one header or trailer line (without its CRLF)."""
    if line[:1] in (b" ", b"\t"):
        raise HttpResponseError("the response folds a header over lines (obsolete line folding), which is refused")
    name, sep, value = line.partition(b":")
    if not sep or not _TOKEN.match(name.decode("latin-1")):
        raise HttpResponseError(f"the response holds a malformed header line {line[:80]!r}")
    if not _VALUE.match(value):
        raise HttpResponseError(f"the value of the response header {name.decode('latin-1')} holds control characters")
    return name.decode("latin-1"), value.strip(b" \t").decode("latin-1")


def framing(status: int, method: str, headers: list[tuple[str, str]]) -> int | str | None:
    """How the body is delimited: None (no body), "chunked", "close" (read to the end) or a length."""
    if method == "HEAD" or status in (204, 304):
        return None
    te = [v for n, v in headers if n.lower() == "transfer-encoding"]
    cl = [v for n, v in headers if n.lower() == "content-length"]
    if te and cl:
        raise HttpResponseError("the response has both Transfer-Encoding and Content-Length, which is refused (ambiguous framing)")
    if te:
        codings = [c.strip().lower() for v in te for c in v.split(",")]
        if codings != ["chunked"]:
            raise HttpResponseError(f"the response's Transfer-Encoding {', '.join(te)!r} is not supported (only chunked)")
        return "chunked"
    if cl:
        values = {c.strip() for v in cl for c in v.split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit() or len(next(iter(values))) > 18:
            raise HttpResponseError(f"the response's Content-Length {', '.join(cl)!r} is not one decimal number")
        return int(next(iter(values)))
    return "close"


def chunk_size(line: bytes) -> int:
    """The size of a chunk from its size line (extensions ignored)."""
    m = _CHUNK.match(line)
    if not m:
        raise HttpResponseError(f"the response holds a malformed chunk size line {line[:80]!r}")
    return int(m.group(1), 16)
