"""Monthly billing periods, as Lago computes them for a subscription (docs/lago-usage.md, "Billing periods").

- `calendar`: the period is the calendar month (UTC), its start clamped to the subscription's start;
- `anniversary`: the period starts on the day of the month the subscription started (the last day of a
  shorter month when that day does not exist).
A period ends one second before the next one starts (Lago writes 23:59:59). A usage counter is keyed by its
period's start, so a new period is a new counter.

In Lago mode the subscription's own `current_billing_period_started_at` is authoritative; this is what the
embedded mode (a catalog file) uses, and the fallback before Lago has said.
"""

from __future__ import annotations

import calendar
import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class BillingTime(enum.StrEnum):
    CALENDAR = "calendar"
    ANNIVERSARY = "anniversary"


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime  # inclusive, one second before the next period starts

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)


def period_at(now: datetime, started_at: datetime | None, billing_time: BillingTime = BillingTime.CALENDAR) -> Period:
    """The period holding `now`. Without a start date (a catalog subscription may have none) the period is
    the calendar month: never a period that starts at `now`, which would be a new counter on every call."""
    now = now.astimezone(UTC)
    origin = started_at.astimezone(UTC) if started_at is not None else None
    if billing_time is BillingTime.CALENDAR or origin is None:
        start = _month_start(now.year, now.month, 1)
        if origin is not None and origin > start:
            start = origin
        nxt = _month_start(*_next_month(now.year, now.month), 1)
        return Period(start, nxt - timedelta(seconds=1))
    day = origin.day
    year, month = now.year, now.month
    start = _month_start(year, month, day)
    if start > now:
        year, month = _previous_month(year, month)
        start = _month_start(year, month, day)
    start = max(start, origin)
    nxt = _month_start(*_next_month(year, month), day)
    return Period(start, nxt - timedelta(seconds=1))


def _month_start(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, min(day, calendar.monthrange(year, month)[1]), tzinfo=UTC)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)
