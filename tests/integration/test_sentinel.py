"""Redis through Sentinel: a master, a replica and a Sentinel on loopback; the master is killed, the
Sentinel promotes the replica, and the sidecar follows without a restart."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.support.processes import RedisServer, free_port, redis_server_binary, start_redis, start_sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

MAX_SEATS = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="seats", privilege_code="max")


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, int]]:
    master, replica = start_redis(), start_redis()
    replica.client().replicaof("127.0.0.1", master.port)
    port = free_port()
    config = tmp_path / "sentinel.conf"  # Sentinel rewrites its own config file, so it must be writable
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds mymaster 500\nsentinel failover-timeout mymaster 2000\n"
    )
    sentinel = subprocess.Popen(
        [redis_server_binary(), str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        eventually(lambda: redis.Redis(port=port).ping(), timeout=15, what="the Sentinel answering")
        eventually(lambda: replica.client().info("replication")["master_link_status"] == "up", what="replica synced")
        yield master, replica, port
    finally:
        sentinel.kill()
        sentinel.wait(timeout=10)
        master.stop()
        replica.stop()


def test_the_sidecar_follows_a_sentinel_failover(
    tmp_path: Path, example_catalog: Path, sentinel_setup: tuple[RedisServer, RedisServer, int]
) -> None:
    master, replica, sentinel_port = sentinel_setup
    args = ["--store", "redis", "--redis-sentinels", f"127.0.0.1:{sentinel_port}", "--redis-sentinel-master",
            "mymaster", "--redis-timeout-seconds", "0.5"]  # fmt: skip
    sidecar = start_sidecar(tmp_path, example_catalog, args)
    try:
        assert stub(sidecar).CheckEntitlement(MAX_SEATS, timeout=5).value.int_value == 25
        assert master.client().dbsize() > 0  # it wrote to the master the Sentinel named
        eventually(lambda: replica.client().dbsize() == master.client().dbsize(), what="replicated")

        def source() -> int:
            return int(stub(sidecar).CheckEntitlement(MAX_SEATS, timeout=5).freshness.source)

        eventually(lambda: source() == pb.SOURCE_MEMORY, what="an in-process cache hit")

        master.kill()
        eventually(
            lambda: replica.client().info("replication")["role"] == "master", timeout=20, what="the replica promoted"
        )
        # After the reconnect the in-process cache is emptied: the same question is read from the new master.
        # (Nothing was written meanwhile, so nothing else would drop the cached entry.)
        eventually(lambda: source() == pb.SOURCE_REDIS, timeout=20, what="the cache emptied on failover")
        catalog = example_catalog.read_text()
        example_catalog.write_text(catalog.replace("seats: {max: 25}", "seats: {max: 31}"))
        eventually(
            lambda: stub(sidecar).CheckEntitlement(MAX_SEATS, timeout=5).value.int_value == 31,
            timeout=20,
            what="the edit written to the new master and answered",
        )
        assert sidecar.process.poll() is None
    finally:
        sidecar.terminate()
