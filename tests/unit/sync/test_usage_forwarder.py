"""The usage forwarder acknowledges only what the sink took: on the in-memory outbox with a sink that
answers as scripted (whole batches, rolled-back batches, failures)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from entitlements_sidecar.domain.errors import SourceRejectedError, SourceUnavailableError
from entitlements_sidecar.domain.usage import UsageEvent
from entitlements_sidecar.domain.usage_outbox import SendResult
from entitlements_sidecar.store.usage_outbox_memory import MemoryUsageOutbox
from entitlements_sidecar.sync.usage_forwarder import UsageForwarder
from tests.support.wait import eventually_async


def event(index: int) -> UsageEvent:
    return UsageEvent(f"t{index}", "sub_a", "api_calls", 1_767_225_600.0 + index)


class Sink:
    """Takes every event it is sent, unless a scripted answer comes first."""

    def __init__(self, max_batch: int = 10) -> None:
        self.max_batch = max_batch
        self.sent: list[list[str]] = []  # transaction ids of each call, in order
        self.taken: list[UsageEvent] = []
        self.script: list[Exception | SendResult] = []
        self.learns_limit: int | None = None  # as LagoEventSink does on 422 too_many_events

    async def send(self, events: Sequence[UsageEvent]) -> SendResult:
        assert len(events) <= self.max_batch
        self.sent.append([e.transaction_id for e in events])
        if self.learns_limit is not None:
            self.max_batch, self.learns_limit = self.learns_limit, None
            return SendResult(delivered=())
        if self.script:
            answer = self.script.pop(0)
            if isinstance(answer, Exception):
                raise answer
            self.taken += [events[i] for i in answer.delivered]
            return answer
        self.taken += events
        return SendResult(delivered=range(len(events)))


@pytest.fixture
async def running() -> AsyncIterator[tuple[UsageForwarder, Sink, MemoryUsageOutbox]]:
    outbox, sink = MemoryUsageOutbox(), Sink()
    delivered: list[int] = []
    forwarder = UsageForwarder(
        outbox, sink, idle_seconds=0.01, retry_delays=(0.01, 0.05), rejected_pause=0.05, on_delivered=delivered.append
    )
    task = asyncio.create_task(forwarder.run())
    yield forwarder, sink, outbox
    forwarder.stop()
    await asyncio.wait_for(task, 5)


async def drained(outbox: MemoryUsageOutbox) -> bool:
    return await outbox.depth() == 0


async def test_everything_recorded_goes_out_in_batches_the_sink_takes(
    running: tuple[UsageForwarder, Sink, MemoryUsageOutbox],
) -> None:
    _, sink, outbox = running
    for index in range(25):
        outbox.add(event(index))
    await eventually_async(lambda: drained(outbox), what="the outbox drained")
    assert [e.transaction_id for e in sink.taken] == [f"t{i}" for i in range(25)]
    assert max(len(call) for call in sink.sent) == 10


async def test_a_source_that_is_down_gets_the_same_events_again_and_none_is_lost(
    running: tuple[UsageForwarder, Sink, MemoryUsageOutbox],
) -> None:
    forwarder, sink, outbox = running
    sink.script = [SourceUnavailableError("lago 503"), SourceUnavailableError("lago 503")]
    for index in range(3):
        outbox.add(event(index))
    await eventually_async(lambda: drained(outbox), what="delivered once Lago answered")
    assert sink.sent[:3] == [["t0", "t1", "t2"]] * 3 and [e.transaction_id for e in sink.taken] == ["t0", "t1", "t2"]
    assert forwarder.problem is None


async def test_a_rolled_back_batch_is_split_delivered_and_refused_items_are_kept_aside(
    running: tuple[UsageForwarder, Sink, MemoryUsageOutbox],
) -> None:
    _, sink, outbox = running
    # Lago had t1 already (a resend), refuses t2, and so rolled back t0 and t3: those two go again.
    sink.script = [SendResult(delivered=[1], refused={2: '{"timestamp":["invalid_format"]}'})]
    for index in range(4):
        outbox.add(event(index))
    await eventually_async(lambda: drained(outbox), what="the rest sent again")
    assert sink.sent == [["t0", "t1", "t2", "t3"], ["t0", "t3"]]
    assert outbox.refused == [(event(2), '{"timestamp":["invalid_format"]}')]


async def test_a_refused_api_key_keeps_the_events_and_says_so_until_it_is_fixed(
    running: tuple[UsageForwarder, Sink, MemoryUsageOutbox],
) -> None:
    forwarder, sink, outbox = running
    sink.script = [SourceRejectedError("lago 401"), SourceRejectedError("lago 401")]
    outbox.add(event(0))
    await eventually_async(lambda: asyncio.sleep(0, forwarder.problem), what="the refusal shown")
    assert "refuses usage events" in str(forwarder.problem) and await outbox.depth() == 1
    await eventually_async(lambda: drained(outbox), what="delivered once the key works")
    assert forwarder.problem is None and [e.transaction_id for e in sink.taken] == ["t0"]


async def test_a_smaller_limit_learnt_by_the_sink_splits_what_was_read(
    running: tuple[UsageForwarder, Sink, MemoryUsageOutbox],
) -> None:
    _, sink, outbox = running
    sink.learns_limit = 4  # this Lago takes 4 at a time: nothing of the first batch is taken
    for index in range(10):
        outbox.add(event(index))
    await eventually_async(lambda: drained(outbox), what="sent in smaller batches")
    assert [len(call) for call in sink.sent] == [10, 4, 4, 2]
    assert sorted(e.transaction_id for e in sink.taken) == sorted(f"t{i}" for i in range(10))


async def test_a_sink_that_breaks_unexpectedly_keeps_the_events_and_the_forwarder_running(
    running: tuple[UsageForwarder, Sink, MemoryUsageOutbox],
) -> None:
    forwarder, sink, outbox = running
    sink.script = [KeyError("a bug reading an answer")]
    outbox.add(event(0))
    await eventually_async(lambda: drained(outbox), what="delivered on the next try")
    assert len(sink.sent) == 2 and [e.transaction_id for e in sink.taken] == ["t0"]
    assert forwarder.problem is None  # said while it failed, cleared once delivered
