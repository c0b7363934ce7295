"""Monthly billing periods: calendar and anniversary, clamped to the subscription's start."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from entitlements_sidecar.domain.periods import Billing, BillingTime, Period, period_at, period_for


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "started", "billing", "start", "end"),
    [
        (utc(2026, 12, 2, 3), utc(2026, 8, 1), BillingTime.CALENDAR, utc(2026, 12, 1), utc(2026, 12, 31, 23, 59, 59)),
        (
            utc(2026, 8, 20),
            utc(2026, 8, 15, 10),
            BillingTime.CALENDAR,
            utc(2026, 8, 15, 10),
            utc(2026, 8, 31, 23, 59, 59),
        ),
        # no start date: the calendar month, never a period that starts now (a new counter every call)
        (utc(2026, 12, 31, 23, 59, 59), None, BillingTime.CALENDAR, utc(2026, 12, 1), utc(2026, 12, 31, 23, 59, 59)),
        (utc(2026, 12, 2, 3, 4, 5), None, BillingTime.ANNIVERSARY, utc(2026, 12, 1), utc(2026, 12, 31, 23, 59, 59)),
        (utc(2026, 12, 20), utc(2026, 9, 15), BillingTime.ANNIVERSARY, utc(2026, 12, 15), utc(2027, 1, 14, 23, 59, 59)),
        (
            utc(2026, 12, 10),
            utc(2026, 9, 15),
            BillingTime.ANNIVERSARY,
            utc(2026, 11, 15),
            utc(2026, 12, 14, 23, 59, 59),
        ),
        (utc(2027, 1, 5), utc(2026, 9, 15), BillingTime.ANNIVERSARY, utc(2026, 12, 15), utc(2027, 1, 14, 23, 59, 59)),
        # the 31st in a 28-day month is its last day
        (
            utc(2027, 2, 28, 12),
            utc(2026, 1, 31),
            BillingTime.ANNIVERSARY,
            utc(2027, 2, 28),
            utc(2027, 3, 30, 23, 59, 59),
        ),
    ],
)
def test_the_period_holding_a_moment(
    now: datetime, started: datetime | None, billing: BillingTime, start: datetime, end: datetime
) -> None:
    period = period_at(now, started, billing)
    assert (period.start, period.end) == (start, end)
    assert period.start <= now <= period.end


def test_the_next_period_is_a_new_counter_key() -> None:
    december = period_at(utc(2026, 12, 31, 23, 59, 59), utc(2026, 1, 1))
    january = period_at(utc(2027, 1, 1), utc(2026, 1, 1))
    assert january.start_ms == int(utc(2027, 1, 1).timestamp() * 1000) > december.start_ms


LAGO_QUARTER = Period(utc(2026, 10, 1), utc(2026, 12, 31, 23, 59, 59))  # a quarterly plan, as Lago said


@pytest.mark.parametrize(
    ("now", "billing", "start", "end"),
    [
        # within the period Lago said: Lago's bounds, whatever the plan's interval
        (
            utc(2026, 12, 2),
            Billing(BillingTime.CALENDAR, LAGO_QUARTER),
            utc(2026, 10, 1),
            utc(2026, 12, 31, 23, 59, 59),
        ),
        # a monthly period rolled over with no word from Lago: the next month, exactly
        (
            utc(2027, 1, 3),
            Billing(BillingTime.CALENDAR, Period(utc(2026, 12, 1), utc(2026, 12, 31, 23, 59, 59))),
            utc(2027, 1, 1),
            utc(2027, 1, 31, 23, 59, 59),
        ),
        # another interval rolled over: it starts one second after the last, as long as it
        (utc(2027, 1, 3), Billing(BillingTime.CALENDAR, LAGO_QUARTER), utc(2027, 1, 1), utc(2027, 4, 2, 23, 59, 59)),
        # an anniversary month rolled over
        (
            utc(2026, 12, 20),
            Billing(BillingTime.ANNIVERSARY, Period(utc(2026, 11, 15), utc(2026, 12, 14, 23, 59, 59))),
            utc(2026, 12, 15),
            utc(2027, 1, 14, 23, 59, 59),
        ),
        # nothing said: the rules
        (utc(2026, 12, 20), Billing(BillingTime.ANNIVERSARY), utc(2026, 12, 15), utc(2027, 1, 14, 23, 59, 59)),
    ],
)
def test_the_period_for_a_subscription_follows_what_lago_said(
    now: datetime, billing: Billing, start: datetime, end: datetime
) -> None:
    period = period_for(now, utc(2026, 9, 15), billing)
    assert (period.start, period.end) == (start, end)
