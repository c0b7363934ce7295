from __future__ import annotations

import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.processes import REPO, RedisServer, start_redis
from tests.support.redis_cluster import RedisClusterNodes, start_redis_cluster

# Hypothesis fails an example that takes over 200 ms: a timing check, which a busy 2-core CI machine
# failed on one catalog example (224 ms). Time is the benchmarks' business; the fuzz tests check outcomes.
settings.register_profile("untimed", deadline=None)
settings.load_profile("untimed")

DEFAULT_PORTS = (8080, 50051, 6379)  # the sidecar's default HTTP and gRPC ports, and Redis's


@pytest.fixture(scope="session", autouse=True)
def default_ports_taken() -> Iterator[None]:
    """Hold the default ports for the whole session, as `make run` in another terminal would: a test
    that relies on a fixed port fails here rather than on a developer's machine. A port something
    else already holds is just as taken."""
    held = []
    for port in DEFAULT_PORTS:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            held.append(sock)
        except OSError:
            sock.close()
    yield
    for sock in held:
        sock.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session; tests isolate themselves by key prefix."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    """One real 3-master Redis Cluster for the session, started only when a test asks for it."""
    nodes = start_redis_cluster()
    yield nodes
    nodes.stop()


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def example_catalog(tmp_path: Path) -> Path:
    """A writable copy of examples/catalog.yaml."""
    target = tmp_path / "catalog.yaml"
    shutil.copy(REPO / "examples" / "catalog.yaml", target)
    return target
