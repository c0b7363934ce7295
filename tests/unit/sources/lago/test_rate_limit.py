from __future__ import annotations

import asyncio
import time

from entitlements_sidecar.sources.lago.rate_limit import TokenBucket


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
