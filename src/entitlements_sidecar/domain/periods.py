"""Monthly billing periods, as Lago computes them for a subscription (docs/lago-usage.md, "Billing periods").

- `calendar`: the period is the calendar month (UTC), its start clamped to the subscription's start;
- `anniversary`: the period starts on the day of the month the subscription started (the last day of a
  shorter month when that day does not exist).
A period ends one second before the next one starts (Lago writes 23:59:59). A usage counter is keyed by its
period's start, so a new period is a new counter.

In Lago mode the subscription's own current billing period (`current_billing_period_started_at` and
`_ending_at`, kept in `Billing.current`) is authoritative for any plan interval. No webhook announces its
end, so once it has passed the next one starts one second after it (exact), and ends where a monthly
period would (the last one was a month at most) or as long after as the last one did (a longer interval),
until Lago's next read of the subscription says.
The rules above are what the embedded mode (a catalog file) uses, and the fallback before Lago has said.
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


@dataclass(frozen=True, slots=True)
class Billing:
    """How a subscription is billed: the billing time, and the current period as the source last said."""

    time: BillingTime = BillingTime.CALENDAR
    current: Period | None = None


CALENDAR_BILLING = Billing()  # what a subscription nobody said otherwise of has: the calendar month
_SECOND = timedelta(seconds=1)
_MONTH = timedelta(days=31)


def period_for(now: datetime, started_at: datetime | None, billing: Billing) -> Period:
    """The billing period holding `now` for a subscription billed as `billing`."""
    current = billing.current
    if current is not None:
        if current.start <= now <= current.end:
            return current
        following = current.end + _SECOND
        length = current.end - current.start
        if now >= following:
            monthly = period_at(now, started_at, billing.time)
            if length <= _MONTH and monthly.start == following:  # a monthly period rolled over: exact
                return monthly
            if now <= following + length:
                return Period(following, following + length)
    return period_at(now, started_at, billing.time)


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
