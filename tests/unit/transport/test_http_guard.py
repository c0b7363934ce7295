"""The HTTP guard's framing on raw bytes: requests split anywhere pass whole; limits refuse early."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from entitlements_sidecar.transport.http.guard import GuardedProtocol, HttpLimits


class _Inner(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = bytearray()

    def data_received(self, data: bytes) -> None:
        self.received += data


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def _guard(limits: HttpLimits | None = None) -> tuple[GuardedProtocol, _Inner, _Transport, list[str]]:
    inner, transport = _Inner(), _Transport()
    rejected: list[str] = []
    guard = GuardedProtocol(inner, limits or HttpLimits(), rejected.append)
    guard.connection_made(transport)
    return guard, inner, transport, rejected


PIPELINE = (
    b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\n\r\n\r\n0\r\nT: 1\r\n\r\n"
    b"\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n"
)


@pytest.mark.parametrize("step", [1, 2, 7, 64, len(PIPELINE)])
async def test_pipelined_requests_split_anywhere_pass_whole(step: int) -> None:
    guard, inner, transport, rejected = _guard()
    for i in range(0, len(PIPELINE), step):
        guard.data_received(PIPELINE[i : i + step])
    assert bytes(inner.received) == PIPELINE and not rejected and not transport.closed
    assert guard._state.value == "head" and guard._timer is None  # between requests: no timer running


async def test_a_long_line_is_refused_before_its_end_arrives() -> None:
    guard, inner, transport, rejected = _guard(HttpLimits(max_line=100))
    guard.data_received(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 200)
    assert rejected == ["too_large"] and transport.closed
    assert bytes(transport.written).startswith(b"HTTP/1.1 431 ") and b"X-Long" not in inner.received


async def test_only_the_signature_may_be_long() -> None:
    limits = HttpLimits(max_line=100, max_signature_line=10_000)
    guard, _, transport, rejected = _guard(limits)
    guard.data_received(b"POST /webhooks/lago HTTP/1.1\r\nX-Lago-Signature: " + b"s" * 5000 + b"\r\n\r\n")
    assert not rejected and not transport.closed
    guard, _, transport, rejected = _guard(limits)
    guard.data_received(b"POST /webhooks/lago HTTP/1.1\r\nX-Other: " + b"s" * 5000 + b"\r\n")
    assert rejected == ["too_large"]
    guard, _, transport, rejected = _guard(limits)  # only one signature line may be long
    guard.data_received(b"POST /webhooks/lago HTTP/1.1\r\n" + (b"X-Lago-Signature: " + b"s" * 5000 + b"\r\n") * 2)
    assert rejected == ["too_large"]
    guard, _, transport, rejected = _guard(limits)  # nor does a long partial line wait to be refused
    guard.data_received(b"POST /webhooks/lago HTTP/1.1\r\nX-Other: " + b"s" * 200)
    assert rejected == ["too_large"]


async def test_the_head_timer_answers_408() -> None:
    guard, _, transport, rejected = _guard(HttpLimits(head_timeout=0.01))
    guard.data_received(b"GET / HTTP/1.1\r\nHost")
    await asyncio.sleep(0.05)  # the guard's own timer is what is under test
    assert rejected == ["timeout"] and bytes(transport.written).startswith(b"HTTP/1.1 408 ")
