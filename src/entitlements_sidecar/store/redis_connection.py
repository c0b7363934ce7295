"""Opening Redis as configured: one server, the master a set of Sentinels names, or a Redis Cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisClusterException, RedisError

RedisClient: TypeAlias = aioredis.Redis | RedisCluster

# What a Redis call raises when Redis cannot answer. The cluster client's "no node reachable" and
# "slots not covered" are RedisClusterException, which is not a RedisError.
REDIS_FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)


def _retry() -> Retry:
    # Again on a broken connection only (a pooled socket to a Redis that restarted): a few quick tries.
    # Never on a timeout: redis-py's default retries those ten times, so a paused Redis would hold every
    # command for ten socket timeouts; the caller's deadline and the failure policy handle a slow Redis.
    return Retry(ExponentialBackoff(cap=0.2, base=0.02), 3, supported_errors=(ConnectionError,))


def open_redis(
    url: str,
    timeout: float,
    sentinels: Sequence[tuple[str, int]] = (),
    sentinel_master: str = "mymaster",
    cluster_nodes: Sequence[tuple[str, int]] = (),
) -> RedisClient:
    if cluster_nodes:
        return _cluster(url, timeout, cluster_nodes)
    if sentinels:
        return _through_sentinels(url, timeout, sentinels, sentinel_master)
    return aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=_retry())


def _cluster(url: str, timeout: float, cluster_nodes: Sequence[tuple[str, int]]) -> RedisCluster:
    # The seed nodes only find the cluster; the client then follows its slot map (MOVED/ASK, failovers).
    # A cluster has one database, so the URL contributes credentials and TLS (rediss://) only.
    parts = parse_url(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_nodes],
        username=parts.get("username"),
        password=parts.get("password"),
        ssl=url.startswith("rediss://"),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=_retry(),
    )


def _through_sentinels(url: str, timeout: float, sentinels: Sequence[tuple[str, int]], master: str) -> aioredis.Redis:
    # The pool asks the Sentinels for the current master on every (re)connect, so a failover is a
    # reconnect (the change feed then resets the L1, like any reconnect).
    parts = parse_url(url)
    sentinel = Sentinel(list(sentinels), socket_connect_timeout=timeout, socket_timeout=timeout)  # type: ignore[no-untyped-call]
    client: aioredis.Redis = sentinel.master_for(
        master,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        db=parts.get("db", 0),
        username=parts.get("username"),
        password=parts.get("password"),
        retry=_retry(),
    )
    return client


def text(value: Any) -> str:
    """A Redis reply (bytes, or str from a client that decodes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
