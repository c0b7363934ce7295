"""Reads inside a call are bounded by the caller's deadline less the margin (no sockets)."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

from entitlements_sidecar.domain.errors import DeadlineError
from entitlements_sidecar.transport.grpc.deadlines import CALL_DEADLINE, CallDeadline


async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "answered"


async def test_without_a_deadline_the_work_is_awaited() -> None:
    assert await CallDeadline(0.01).within(slow(0.02)) == "answered"


async def test_work_that_fits_the_deadline_is_awaited() -> None:
    CALL_DEADLINE.set(asyncio.get_running_loop().time() + 1.0)
    assert await CallDeadline(0.01).within(slow(0.01)) == "answered"


async def test_work_past_the_deadline_is_cancelled_before_it_less_the_margin() -> None:
    loop = asyncio.get_running_loop()
    CALL_DEADLINE.set(loop.time() + 0.1)
    started = time.monotonic()
    with pytest.raises(DeadlineError, match="did not answer within the call's deadline"):
        await CallDeadline(0.03).within(slow(5))
    assert 0.06 <= time.monotonic() - started < 0.1  # ended at the deadline less the margin (30 ms > 10 %)


def test_the_margin_is_at_least_a_tenth_and_at_most_half_of_the_time_left() -> None:
    deadline = CallDeadline(0.01)
    assert deadline.budget(0.005) == pytest.approx(0.0025)  # a short deadline: half of it for the read
    assert deadline.budget(0.05) == pytest.approx(0.04)  # the 10 ms margin
    assert deadline.budget(2.0) == pytest.approx(1.8)  # a tenth


async def test_no_time_left_fails_at_once_and_leaves_no_coroutine_behind() -> None:
    CALL_DEADLINE.set(asyncio.get_running_loop().time() - 0.001)  # already past
    work = slow(5)
    with pytest.raises(DeadlineError, match="no time left"):
        await CallDeadline(0.01).within(work)
    assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED  # else "never awaited" would warn
