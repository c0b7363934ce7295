"""A real 3-master Redis Cluster on loopback ports (`redis-server --cluster-enabled yes`), formed with
plain cluster commands so no `redis-cli --cluster` is needed. Bounded in time; `stop()` removes it."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from entitlements_sidecar.options import host_ports
from entitlements_sidecar.store.redis_connection import RedisClient, open_redis
from tests.support.processes import RedisServer, ephemeral_range_low, port_is_free, redis_server_binary
from tests.support.wait import GiveUp, eventually

SLOTS = 16384


@dataclass
class RedisClusterNodes:
    ports: list[int]
    processes: list[subprocess.Popen[bytes]]
    directory: Path

    @property
    def seeds(self) -> str:
        """host:port,... as ENTITLEMENTS_REDIS_CLUSTER_NODES takes them."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self, index: int = 0) -> redis.Redis:
        return redis.Redis(port=self.ports[index], socket_timeout=5)

    def raw(self) -> redis.RedisCluster:
        """A plain synchronous cluster client, to set up states the sidecar itself would not write."""
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0])

    def async_client(self) -> RedisCluster:
        """The sidecar's own way of opening a cluster (ENTITLEMENTS_REDIS_CLUSTER_NODES)."""
        client = open_redis(self.url, 5.0, cluster_nodes=host_ports(self.seeds))
        assert isinstance(client, RedisCluster)
        return client

    def keys_per_node(self) -> list[int]:
        return [int(self.client(i).dbsize()) for i in range(len(self.ports))]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis_cluster(masters: int = 3, with_replicas: bool = False, attempts: int = 3) -> RedisClusterNodes:
    """`masters` primaries (ports[:masters]) and, with replicas, one replica each (ports[masters + i] follows
    ports[i]). Ports are picked free but bound later by redis-server; if another process took one meanwhile,
    the node exits and the cluster is started again on other ports."""
    for attempt in range(1, attempts + 1):
        try:
            return _start(masters, with_replicas)
        except GiveUp:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _start(masters: int, with_replicas: bool) -> RedisClusterNodes:
    directory = Path(tempfile.mkdtemp(prefix="ent-redis-cluster-"))
    ports = [_port_with_bus_port() for _ in range(masters * (2 if with_replicas else 1))]
    nodes = RedisClusterNodes(ports, [_spawn(port, directory) for port in ports], directory)

    def answering(index: int) -> bool:
        if nodes.processes[index].poll() is not None:
            raise GiveUp(f"cluster node on port {ports[index]} exited")
        return bool(nodes.client(index).ping())

    try:
        for index in range(len(ports)):
            eventually(lambda i=index: answering(i), timeout=15, what="cluster node answering PING")  # type: ignore[misc]
        first = nodes.client(0)
        for index, port in enumerate(ports):
            if index < masters:
                low, high = SLOTS * index // masters, SLOTS * (index + 1) // masters
                nodes.client(index).cluster("ADDSLOTS", *range(low, high))
            if index:
                first.cluster("MEET", "127.0.0.1", port)

        def formed() -> bool:
            return all(nodes.client(i).cluster("INFO")["cluster_state"] == "ok" for i in range(len(ports)))

        eventually(formed, timeout=20, what="the cluster agreeing on its slots")
        for index in range(masters, len(ports)):
            master_id = nodes.client(index - masters).cluster("MYID")
            # A replica can follow a master only once it has heard of it through the cluster bus.
            eventually(
                lambda i=index, m=master_id: nodes.client(i).cluster("REPLICATE", m),  # type: ignore[misc]
                what="a replica following its master",
            )
        eventually(
            lambda: all(
                nodes.client(i).info("replication").get("master_link_status") == "up"
                for i in range(masters, len(ports))
            ),
            what="replicas in sync",
        )
    except BaseException:
        nodes.stop()
        raise
    return nodes


def _port_with_bus_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too, both below the ports `free_port`
    gives out and below the kernel's ephemeral range."""
    top = min(ephemeral_range_low() - 10_000, 30_000) - 10_000
    for _ in range(200):
        port = random.randrange(max(1024, top - 6_000), top)
        if port_is_free(port) and port_is_free(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _spawn(port: int, directory: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
         "--cluster-node-timeout", "2000", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def redis_client(request: pytest.FixtureRequest, backend: str | None = None) -> RedisClient:
    """A client of the session's redis-server or Redis Cluster: `backend`, else the fixture's param."""
    if (backend or request.param) == "cluster":
        nodes: RedisClusterNodes = request.getfixturevalue("redis_cluster")
        return nodes.async_client()
    server: RedisServer = request.getfixturevalue("redis_server")
    return open_redis(server.url, 5.0)
