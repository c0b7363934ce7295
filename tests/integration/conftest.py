from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.support.processes import RedisServer, Sidecar, start_redis, start_sidecar

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_sidecar(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str, example_catalog: Path
) -> Iterator[Sidecar]:
    sidecar = start_sidecar(
        tmp_path,
        example_catalog,
        ["--store", "redis", "--redis-url", redis_server.url, "--redis-key-prefix", key_prefix],
    )
    yield sidecar
    sidecar.terminate()


@pytest.fixture
def memory_sidecar(tmp_path: Path, example_catalog: Path) -> Iterator[Sidecar]:
    sidecar = start_sidecar(tmp_path, example_catalog)
    yield sidecar
    sidecar.terminate()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill, pause or restart it (not the session's)."""
    server = start_redis()
    yield server
    server.stop()


def stub(sidecar: Sidecar) -> pb_grpc.EntitlementServiceStub:
    return pb_grpc.EntitlementServiceStub(sidecar.channel)
