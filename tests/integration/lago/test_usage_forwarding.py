"""Usage reaches Lago, each event once: sidecar processes on a real Redis consume and report over gRPC,
the syncer forwards the outbox to the emulator's /events/batch. Lago down for a while, a syncer killed
with events in hand, and forwarding turned off."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import pytest

from tests.integration.lago.conftest import SyncerFactory
from tests.integration.lago.usage_calls import consume, ledger, metric, report
from tests.lago_emulator.server import LagoEmulator
from tests.lago_emulator.usage import billing_period
from tests.support.processes import RedisServer
from tests.support.wait import eventually, holds_for

pytestmark = pytest.mark.integration


def test_what_is_recorded_reaches_lago_once_and_what_is_refused_never_does(
    lago: LagoEmulator, start_syncer: SyncerFactory, meters: list[str]
) -> None:
    syncer = start_syncer(*meters).sidecar
    answers = [consume(syncer, f"c{i}") for i in range(7)]  # a quota of 5: two refused
    assert [a.recorded for a in answers] == [True] * 5 + [False] * 2
    assert consume(syncer, "c0").duplicate  # a retry
    assert report(syncer, "r1", "250").recorded
    expected = sorted([("sub_0", "api_calls", f"c{i}") for i in range(5)] + [("sub_1", "tokens", "r1")])
    eventually(lambda: ledger(lago) == expected, timeout=10, what="every recorded use in Lago")
    holds_for(lambda: ledger(lago) == expected, 0.5, what="nothing more arrives")
    [tokens] = [e for e in lago.state.usage.events if e["code"] == "tokens"]
    assert tokens["properties"] == {"tokens": "250"}
    eventually(lambda: metric(syncer, "entitlements_usage_events_forwarded_total") == 6, what="counted in metrics")
    eventually(lambda: metric(syncer, "entitlements_usage_outbox_depth") == 0, what="the outbox empty")


@pytest.mark.timeout(210)  # two minutes of outage, on purpose
def test_lago_down_for_two_minutes_then_back_loses_nothing(
    lago: LagoEmulator, start_syncer: SyncerFactory, meters: list[str]
) -> None:
    syncer = start_syncer(*meters).sidecar
    lago.controls.fail_status = 503  # every Lago request fails from now on
    assert all(consume(syncer, f"c{i}", subscription=f"sub_{i % 3}").recorded for i in range(9))
    eventually(lambda: "usage events not delivered, retrying" in syncer.log(), what="the forwarder retrying")
    eventually(lambda: metric(syncer, "entitlements_usage_outbox_depth") == 9, what="the outbox holding all 9")
    # Two minutes down: the forwarder keeps the events (backing off to one try in 10 s) and the syncer lives.
    holds_for(lambda: ledger(lago) == [] and syncer.process.poll() is None, 120, interval=1, what="nothing lost")
    assert metric(syncer, "entitlements_usage_outbox_depth") == 9
    lago.controls.fail_status = None
    expected = sorted((f"sub_{i % 3}", "api_calls", f"c{i}") for i in range(9))
    eventually(lambda: ledger(lago) == expected, timeout=25, what="all 9 delivered once Lago is back")


def test_a_syncer_killed_with_events_in_hand_leaves_them_to_the_next(
    lago: LagoEmulator, start_syncer: SyncerFactory, meters: list[str]
) -> None:
    first = start_syncer(*meters, "--queue-consumer", "first", name="first").sidecar
    lago.controls.fail_status = 503  # the forwarder reads the entries and cannot deliver them
    for i in range(4):
        assert consume(first, f"c{i}").recorded
    eventually(lambda: "usage events not delivered, retrying" in first.log(), what="entries read, not delivered")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    lago.controls.fail_status = None
    # Another syncer (another consumer name) claims the dead one's entries once idle for 1 s.
    second = start_syncer(*meters, "--queue-consumer", "second", name="second").sidecar
    expected = sorted(("sub_0", "api_calls", f"c{i}") for i in range(4))
    eventually(lambda: ledger(lago) == expected, timeout=20, what="the dead syncer's events delivered")
    assert consume(second, "c4").recorded  # the counter survived: 4 used before, 1 left of 5
    assert not consume(second, "c5").recorded


def test_forwarding_off_counts_and_sends_nothing(
    lago: LagoEmulator, start_syncer: SyncerFactory, meters: list[str], redis_server: RedisServer, key_prefix: str
) -> None:
    syncer = start_syncer(*meters, "--usage-forwarding", "false").sidecar
    assert consume(syncer, "c0").recorded
    assert consume(syncer, "c1").recorded
    holds_for(lambda: ledger(lago) == [], 1.0, what="nothing sent to Lago")
    outbox = [key for key in redis_server.client().scan_iter(f"{key_prefix}uo:*")]
    assert outbox == []  # nothing queued either


def test_usage_is_counted_in_the_billing_period_lago_gives(
    lago: LagoEmulator, start_syncer: SyncerFactory, meters: list[str]
) -> None:
    row = lago.state.find_row("sub_2")
    row.billing_time, row.started_at = "anniversary", datetime(2025, 9, 15, tzinfo=UTC)
    start, end = billing_period(datetime.now(UTC), row)  # what the subscription's row says to the syncer
    syncer = start_syncer(*meters).sidecar
    usage = consume(syncer, "c0", subscription="sub_2").usage
    assert (usage.period_start.ToDatetime(UTC), usage.period_end.ToDatetime(UTC)) == (start, end)
    assert start.day == 15  # not the calendar month the embedded rules would give without Lago's word
