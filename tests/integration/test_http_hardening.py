"""The HTTP port faces the Internet: floods of headers, slow clients, idle connections and malformed
requests get a short answer and a closed connection, memory stays bounded, and the log stays quiet."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Sidecar, start_sidecar

pytestmark = pytest.mark.integration


@pytest.fixture
def sidecar(tmp_path: Path, example_catalog: Path) -> Iterator[Sidecar]:
    sidecar = start_sidecar(
        tmp_path,
        example_catalog,
        env={
            "ENTITLEMENTS_HTTP_HEADER_TIMEOUT_SECONDS": "1",
            "ENTITLEMENTS_HTTP_BODY_TIMEOUT_SECONDS": "1",
            "ENTITLEMENTS_HTTP_IDLE_TIMEOUT_SECONDS": "2",  # longer than the others: theirs must answer 408
        },
    )
    yield sidecar
    sidecar.terminate()


def _host_port(sidecar: Sidecar) -> tuple[str, int]:
    host, port = sidecar.http_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _memory_kib(sidecar: Sidecar, field: str) -> int:
    for line in Path(f"/proc/{sidecar.process.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc status")


def _read_answer(conn: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := conn.recv(65536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return answer


def _flood(address: tuple[str, int], headers: int, size: int) -> bytes:
    """Send a request with `headers` headers of `size` bytes each, as fast as the server takes them."""
    with socket.create_connection(address, timeout=10) as conn:
        try:
            conn.sendall(b"POST /ofrep/v1/evaluate/flags HTTP/1.1\r\nHost: x\r\n")
            line = b"X-Filler-%d: " + b"a" * size + b"\r\n"
            for i in range(headers):
                conn.sendall(line.replace(b"%d", str(i).encode()))
            conn.sendall(b"Content-Length: 2\r\n\r\n{}")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we were done: the answer is already waiting
        return _read_answer(conn)


def test_a_header_flood_is_refused_early_and_memory_stays_bounded(sidecar: Sidecar) -> None:
    address = _host_port(sidecar)
    assert httpx.get(f"{sidecar.http_url}/healthz", timeout=5).status_code == 200
    before = _memory_kib(sidecar, "VmRSS")
    # What took the RSS from 148 to 438 MB: six connections, 120 headers of 250 KB each.
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: _flood(address, 120, 250_000), range(6)))
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"].startswith("a header line is longer than")
    many_small = _flood(address, 2_000, 100)  # each line within limits, the sum not
    assert many_small.startswith(b"HTTP/1.1 431 "), many_small[:200]
    peak = _memory_kib(sidecar, "VmHWM")
    assert peak - before < 40 * 1024, f"peak RSS rose by {(peak - before) // 1024} MiB under the flood"
    assert httpx.get(f"{sidecar.http_url}/healthz", timeout=5).status_code == 200


def test_slow_and_idle_connections_are_closed(sidecar: Sidecar) -> None:
    address = _host_port(sidecar)
    partial = [socket.create_connection(address, timeout=10) for _ in range(50)]
    for conn in partial:
        conn.sendall(b"POST /ofrep/v1/evaluate/flags/seats HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    slow_body = socket.create_connection(address, timeout=10)
    slow_body.sendall(b"POST /ofrep/v1/evaluate/flags/seats HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    idle = socket.create_connection(address, timeout=10)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = idle.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first
    started = time.monotonic()
    answers = [_read_answer(conn) for conn in partial]  # each returns when the server closes
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
    assert _read_answer(slow_body).startswith(b"HTTP/1.1 408 ")
    assert _read_answer(idle) == b""  # closed by the server, kept-alive but idle
    assert time.monotonic() - started < 8  # timeouts of 1 s, not the minutes they were
    for conn in (*partial, slow_body, idle):
        conn.close()
    # The body that never came ended its handler with the connection reset: one debug line, no traceback
    # (a request answered after it shows the loop has run that handler's end).
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_answer(conn).startswith(b"HTTP/1.1 200")
    assert "Traceback" not in sidecar.log()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /ofrep/v1/evaluate/flags HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /ofrep/v1/evaluate/flags HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n{}",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"POST /ofrep/v1/evaluate/flags HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n{}",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ],
    ids=["duplicate-content-length", "content-length-and-chunked", "http2-preface", "bad-content-length", "no-colon"],
)
def test_malformed_requests_get_a_json_400_and_no_traceback(sidecar: Sidecar, request_bytes: bytes) -> None:
    address = _host_port(sidecar)
    for _ in range(30):  # a bad client repeating itself
        with socket.create_connection(address, timeout=5) as conn:
            conn.sendall(request_bytes)
            answer = _read_answer(conn)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert "error" in json.loads(answer.partition(b"\r\n\r\n")[2])
    assert httpx.get(f"{sidecar.http_url}/healthz", timeout=5).status_code == 200
    log = sidecar.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert log.count("HTTP request refused") <= 2  # throttled: one line per kind every 10 s


def test_chunked_bodies_and_keep_alive_still_work(sidecar: Sidecar) -> None:
    address = _host_port(sidecar)
    body = b'{"context": {"targetingKey": "sub_acme_main"}}'
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 10]), body[i : i + 10]) for i in range(0, len(body), 10))
    with socket.create_connection(address, timeout=5) as conn:
        for _ in range(3):  # three requests on one connection, the body in chunks
            conn.sendall(b"POST /ofrep/v1/evaluate/flags/seats:max HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")  # fmt: skip
            answer = b""
            while b'"value":25' not in answer:
                chunk = conn.recv(65536)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ")


def test_no_response_names_the_servers_software(sidecar: Sidecar) -> None:
    responses = [
        httpx.get(f"{sidecar.http_url}/healthz", timeout=5),
        httpx.get(f"{sidecar.http_url}/nowhere", timeout=5),
        httpx.post(f"{sidecar.http_url}/ofrep/v1/evaluate/flags/seats", content=b"{", timeout=5),
    ]
    with socket.create_connection(_host_port(sidecar), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nB@d: x\r\n\r\n")  # refused by aiohttp itself
        raw = _read_answer(conn)
    assert raw.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), raw[:200]
    for text in [str(r.headers) for r in responses] + [raw.decode(errors="replace")]:
        assert "Python" not in text and "aiohttp" not in text, text
    assert "Traceback" not in sidecar.log()  # aiohttp logs before it answers
