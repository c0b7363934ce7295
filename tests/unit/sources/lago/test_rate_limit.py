from __future__ import annotations

import asyncio
import time

from entitlements_sidecar.sources.lago.rate_limit import TokenBucket
from tests.support.wait import eventually_async


async def test_requests_are_spaced_at_the_rate() -> None:
    bucket = TokenBucket(rate=200)
    started = time.monotonic()
    await asyncio.gather(*(bucket.acquire() for _ in range(41)))
    elapsed = time.monotonic() - started
    assert elapsed >= 40 / 200 * 0.95  # the first is free, the other 40 wait 5 ms each


async def test_pause_holds_everyone_back() -> None:
    bucket = TokenBucket(rate=1000)
    bucket.pause(0.2)
    started = time.monotonic()
    await bucket.acquire()
    assert time.monotonic() - started >= 0.19


async def test_priority_requests_go_before_bulk_ones_that_queued_earlier() -> None:
    bucket = TokenBucket(rate=50)
    order: list[str] = []

    async def bulk() -> None:
        while True:
            await bucket.acquire_bulk()
            order.append("bulk")

    async def priority() -> None:
        await bucket.acquire()
        order.append("priority")

    reader = asyncio.create_task(bulk())

    async def bulk_running() -> bool:
        return "bulk" in order

    await eventually_async(bulk_running, what="the bulk lane taking every token")
    await asyncio.gather(*(priority() for _ in range(5)))
    reader.cancel()
    first = order.index("priority")
    # Once priority requests wait, the bulk lane gets at most the token it was already sleeping for.
    assert order[first : first + 6].count("priority") == 5, order[first:]


async def test_the_bulk_lane_takes_the_whole_rate_when_nothing_else_asks() -> None:
    bucket = TokenBucket(rate=200)
    lane = bucket.bulk()
    started = asyncio.get_running_loop().time()
    for _ in range(20):
        await lane.acquire()
    assert asyncio.get_running_loop().time() - started < 20 / 200 * 3  # about 0.1 s, not throttled further
