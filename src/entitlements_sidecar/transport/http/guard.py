"""A guard in front of aiohttp's HTTP/1.1 protocol: every request head is bounded in size and time,
and every body in time, before any of it is parsed into headers (the HTTP port faces the Internet).

aiohttp bounds each header line and the number of headers but not their sum, and has no header or
body read timeout. The guard follows the request framing on the raw bytes (the head up to its blank
line, then Content-Length bytes or chunks) and answers 431 or 408 itself, closing the connection,
when a limit is passed. Everything else goes to aiohttp unchanged. Sizes and timeouts: ADR 0009.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from entitlements_sidecar.logs import Throttled

log = logging.getLogger(__name__)
_throttled = Throttled(log)

SIGNATURE_HEADER = b"x-lago-signature:"  # a JWT signature carries the whole webhook body


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_line: int = 8 * 1024  # the request line and each header line (nginx: 8 KiB buffers)
    max_signature_line: int = 0  # X-Lago-Signature; 0: no larger than any other line
    max_other_headers: int = 64 * 1024  # all lines but the signature together (Envoy: 60 KiB)
    max_headers: int = 100  # Envoy's default
    head_timeout: float = 10.0  # from a head's first byte to its blank line
    body_timeout: float = 30.0  # from the end of the head to the body's last byte
    idle_timeout: float = 60.0  # between requests on a kept-alive connection (aiohttp closes it)

    @property
    def longest_line(self) -> int:
        return max(self.max_line, self.max_signature_line)


class _State(enum.Enum):
    HEAD = "head"
    BODY = "body"  # Content-Length bytes left
    CHUNK_SIZE = "chunk size line"
    CHUNK_DATA = "chunk data"
    TRAILERS = "trailers"


class GuardedProtocol(asyncio.Protocol):
    """Wraps one connection's aiohttp RequestHandler."""

    def __init__(self, inner: Any, limits: HttpLimits, on_reject: Callable[[str], None]) -> None:
        self._inner = inner
        self._limits = limits
        self._on_reject = on_reject
        self._transport: asyncio.Transport | None = None
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._state = _State.HEAD
        self._line = bytearray()  # the current line of a head, chunk size or trailer
        self._lines = 0  # lines of the current head
        self._other_bytes = 0  # its bytes, the signature line left out
        self._lengths: list[bytes] = []  # its Content-Length values
        self._chunked = False
        self._left = 0  # body or chunk bytes still to come
        self._skip_crlf = False  # a chunk's data ended: its CRLF comes next
        self._signature_seen = False  # this head has had its one long line

    # -- asyncio.Protocol, forwarded -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_timer()
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        pos = 0
        while pos < len(data) and not self._closed:
            pos = self._step(data, pos)
        if not self._closed:
            self._inner.data_received(data)

    # -- framing ---------------------------------------------------------------------------------

    def _step(self, data: bytes, pos: int) -> int:
        if self._state is _State.BODY or self._state is _State.CHUNK_DATA:
            taken = min(self._left, len(data) - pos)
            self._left -= taken
            if self._left == 0:
                if self._state is _State.BODY:
                    self._request_done()
                else:
                    self._state, self._left = _State.CHUNK_SIZE, 0
                    self._skip_crlf = True
            return pos + taken
        end = data.find(b"\n", pos)
        self._line += data[pos : len(data) if end < 0 else end + 1]
        if end < 0:
            self._check_partial_line()
            return len(data)
        line = bytes(self._line).rstrip(b"\r\n")
        self._line.clear()
        if self._state is _State.HEAD:
            self._head_line(line)
        elif self._state is _State.CHUNK_SIZE:
            self._chunk_size_line(line)
        else:
            self._trailer_line(line)
        return end + 1

    def _head_line(self, line: bytes) -> None:
        if self._timer is None:
            self._start_timer(self._limits.head_timeout, "request head not received in time")
        if not line:
            if self._lines:
                self._head_done()
            return  # blank lines before a request line are allowed (RFC 9112 2.2)
        self._lines += 1
        if self._lines == 1 and not _REQUEST_LINE.fullmatch(line):
            self._reject(400, "not an HTTP/1.x request line")
            return
        # One signature line may be long; a second one is held to the limits of every other line.
        is_signature = not self._signature_seen and _is_signature(line)
        self._signature_seen = self._signature_seen or is_signature
        limit = self._limits.max_signature_line if is_signature else self._limits.max_line
        if len(line) > max(limit, self._limits.max_line):
            self._reject(431, f"a header line is longer than {max(limit, self._limits.max_line)} bytes")
            return
        if not is_signature:
            self._other_bytes += len(line) + 2
        if self._other_bytes > self._limits.max_other_headers:
            self._reject(431, f"request headers are larger than {self._limits.max_other_headers} bytes")
        elif self._lines > self._limits.max_headers + 1:
            self._reject(431, f"more than {self._limits.max_headers} request headers")
        elif self._lines > 1:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                self._reject(400, "a header line is not 'Name: value'")
                return
            name = name.lower()
            if name == b"content-length":
                self._lengths.append(value.strip())
            elif name == b"transfer-encoding":
                self._chunked = self._chunked or b"chunked" in value.lower()

    def _check_partial_line(self) -> None:
        # A line without its end yet: refuse it as soon as it is too long to be any line we accept.
        if self._state is not _State.HEAD:
            longest = 1024
        elif len(self._line) >= len(SIGNATURE_HEADER) and not self._signature_seen and _is_signature(self._line):
            longest = self._limits.longest_line
        else:
            longest = self._limits.max_line
        if self._state is _State.HEAD and self._timer is None:
            self._start_timer(self._limits.head_timeout, "request head not received in time")
        if len(self._line) > longest + 2:
            if self._state is _State.HEAD:
                self._reject(431, f"a header line is longer than {longest} bytes")
            else:
                self._reject(400, f"a chunk size or trailer line is longer than {longest} bytes")

    def _head_done(self) -> None:
        self._cancel_timer()
        lengths, chunked = self._lengths, self._chunked
        self._reset_head()
        # Framing a proxy and this server could read differently (request smuggling) is refused here,
        # with a JSON body, before aiohttp sees the request.
        if len(lengths) > 1:
            self._reject(400, "more than one Content-Length header")
            return
        if chunked and lengths:
            self._reject(400, "both Content-Length and Transfer-Encoding")
            return
        if lengths and not lengths[0].isdigit():
            self._reject(400, "Content-Length is not a number")
            return
        if chunked:
            self._state, self._skip_crlf = _State.CHUNK_SIZE, False
        elif len(lengths) == 1 and lengths[0].isdigit() and int(lengths[0]) > 0:
            self._state, self._left = _State.BODY, int(lengths[0])
        else:
            return  # no body; a malformed length is aiohttp's to refuse (400), which closes
        self._start_timer(self._limits.body_timeout, "request body not received in time")

    def _chunk_size_line(self, line: bytes) -> None:
        if self._skip_crlf:  # the CRLF that ends a chunk's data
            self._skip_crlf = False
            if not line:
                return
        size = line.split(b";", 1)[0].strip()
        try:
            self._left = int(size, 16)
        except ValueError:
            self._reject(400, "malformed chunk size")
            return
        self._state = _State.CHUNK_DATA if self._left else _State.TRAILERS

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            self._request_done()

    def _request_done(self) -> None:
        self._cancel_timer()
        self._state = _State.HEAD  # the head timer starts with the next request's first byte

    def _reset_head(self) -> None:
        self._signature_seen = False
        self._lines = 0
        self._other_bytes = 0
        self._lengths = []
        self._chunked = False
        self._left = 0
        self._skip_crlf = False

    # -- timers and refusals ---------------------------------------------------------------------

    def _start_timer(self, seconds: float, why: str) -> None:
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(seconds, self._reject, 408, why)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _reject(self, status: int, why: str) -> None:
        if self._closed or self._transport is None:
            return
        self._closed = True
        self._cancel_timer()
        self._on_reject("timeout" if status == 408 else "too_large" if status == 431 else "malformed")
        peer = self._transport.get_extra_info("peername")
        _throttled.log(logging.INFO, f"http-{status}", "HTTP request refused", status=status, reason=why, peer=peer)
        body = orjson.dumps({"error": why})
        head = (
            f"HTTP/1.1 {status} {_PHRASES[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        self._transport.write(head.encode() + body)
        self._transport.close()


def _is_signature(line: bytes | bytearray) -> bool:
    return bytes(line[: len(SIGNATURE_HEADER)]).lower() == SIGNATURE_HEADER


_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP/1\.[01]")
_PHRASES = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}
