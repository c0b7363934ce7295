"""The change feed says when it may have missed changes, however the connection came back."""

from __future__ import annotations

import pytest

from entitlements_sidecar.domain.ports import ChangeKind
from entitlements_sidecar.store.redis_connection import open_redis
from entitlements_sidecar.store.redis_store import RedisStore
from tests.support.processes import RedisServer
from tests.support.wait import eventually_async

pytestmark = pytest.mark.integration


async def test_a_feed_connection_that_redis_dropped_resets_the_feed(own_redis: RedisServer) -> None:
    # Redis drops a subscriber that falls behind (client-output-buffer-limit pubsub), a proxy drops idle
    # connections: redis-py then reconnects and re-subscribes at once, and what was published in between
    # is gone. The feed must say so, or caches would keep entries whose invalidation was lost.
    store = RedisStore(open_redis(own_redis.url, 2.0), "feed:")
    changes: list[ChangeKind] = []
    store.add_listener(lambda change: changes.append(change.kind))
    await store.start()
    try:
        own_redis.client().client_kill_filter(_type="pubsub")
        await eventually_async(
            lambda: _async(changes.count(ChangeKind.FEED_RESET) >= 2), timeout=10, what="a second FEED_RESET"
        )
    finally:
        await store.close()


async def test_a_quick_redis_restart_resets_the_feed(own_redis: RedisServer) -> None:
    # redis-py reconnects a pub/sub connection and re-subscribes by itself when Redis is back within its
    # retries; a listener must still hear that messages may have been lost in between.
    store = RedisStore(open_redis(own_redis.url, 2.0), "feed:")
    changes: list[ChangeKind] = []
    store.add_listener(lambda change: changes.append(change.kind))
    await store.start()
    try:
        assert changes == [ChangeKind.FEED_RESET]
        own_redis.kill()
        own_redis.restart()
        await eventually_async(
            lambda: _async(changes.count(ChangeKind.FEED_RESET) >= 2), timeout=10, what="a second FEED_RESET"
        )
        assert ChangeKind.FEED_LOST in changes[1:]  # lost, then reset: caches drop what they held
        writer = open_redis(own_redis.url, 2.0)

        async def delivered() -> bool:  # and the feed delivers again (a message sent before it re-subscribed is lost)
            if ChangeKind.SUBSCRIPTION in changes:
                return True
            await writer.publish("feed:changes", "s:7:sub_1")  # heard by the next poll, or sent again
            return False

        await eventually_async(delivered, what="a change after it")
        await writer.aclose()
    finally:
        await store.close()


async def _async(value: bool) -> bool:
    return value
