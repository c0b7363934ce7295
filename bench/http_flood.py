"""The HTTP port under a header flood, and how long Lago's JWT signature header is for a body size.

`python -m bench.http_flood [--tree DIR]` (`make bench-http`, under a minute) starts a catalog sidecar
from this checkout (or from DIR, e.g. a `git worktree` of an older commit), records its RSS, floods its
HTTP port from six connections with 120 headers of 250 KB each (the attack of issue 11), and prints
the peak RSS (VmHWM) and what each connection was answered. Then it signs webhook bodies of several
sizes the way Lago does (RS256, the body in the `data` claim) and prints the X-Lago-Signature length:
what ENTITLEMENTS_HTTP_MAX_SIGNATURE_BYTES must allow. ADR 0009 quotes the output.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def _flood(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        try:
            conn.sendall(b"POST /ofrep/v1/evaluate/flags HTTP/1.1\r\nHost: x\r\n")
            for i in range(120):
                conn.sendall(b"X-Filler-%d: " % i + b"a" * 250_000 + b"\r\n")
            conn.sendall(b"Content-Length: 2\r\n\r\n{}")
        except OSError:
            pass
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except OSError:
            pass
    return answer.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed)"


def flood(tree: Path) -> None:
    http = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTITLEMENTS_")}
    env["PYTHONPATH"] = str(tree / "src")
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "entitlements_sidecar.cli", "serve", "--catalog-path", str(REPO / "examples" /
             "catalog.yaml"), "--grpc-address", f"127.0.0.1:{_free_port()}", "--http-address", f"127.0.0.1:{http}"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{http}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the sidecar did not start")
                time.sleep(0.1)
            before = _kib(process.pid, "VmRSS")
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
                answers = list(pool.map(lambda _: _flood(http), range(6)))
            seconds = time.monotonic() - started
            peak = _kib(process.pid, "VmHWM")
            rise = (peak - before) // 1024
            print(f"tree {tree}: RSS {before // 1024} MiB before, peak {peak // 1024} MiB (+{rise} MiB)")
            print(f"  flood over {seconds:.1f} s; answers: {sorted(set(answers))}")
        finally:
            process.terminate()
            process.wait(timeout=15)


def signature_sizes() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for size in (10_000, 50_000, 100_000, 170_000):
        # A webhook-like body: JSON with many short quoted strings, as Rails writes it.
        items = [{"code": f"feature_{i}", "name": f"Feature {i}", "value": i} for i in range(size // 50)]
        body = orjson.dumps({"webhook_type": "subscription.updated", "items": items})[:size]
        token = jwt.encode({"data": body.decode(errors="ignore"), "iss": "https://api.getlago.com"}, pem, "RS256")
        print(f"body {len(body):>7} bytes -> X-Lago-Signature {len(token):>7} bytes ({len(token) / len(body):.2f} x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", type=Path, default=REPO, help="a checkout whose src/ to run (default: this one)")
    args = parser.parse_args()
    flood(args.tree.resolve())
    signature_sizes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
