from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import REPO, RedisServer, start_redis
from tests.support.redis_cluster import RedisClusterNodes, start_redis_cluster


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
