"""A subscription's billing (domain/periods.py `Billing`) in the store's JSON: `{"time", "start", "end"}`,
or absent (records written before usage counting: the calendar month)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from entitlements_sidecar.domain.periods import CALENDAR_BILLING, Billing, BillingTime, Period

# Subscriptions billed alike share one immutable Billing: calendar-billed ones all have the same period,
# so a cache of a million answers holds a handful of these rather than one each (bounded: cleared when full).
_SHARED: dict[tuple[str, str | None, str | None], Billing] = {}
_SHARED_MAX = 4096


def encode_billing(billing: Billing) -> dict[str, Any] | None:
    if billing == Billing():
        return None  # the default: keep records small
    current = billing.current
    return {
        "time": billing.time.value,
        "start": current.start.isoformat() if current else None,
        "end": current.end.isoformat() if current else None,
    }


def decode_billing(raw: dict[str, Any] | None) -> Billing:
    if not raw:
        return CALENDAR_BILLING
    key = (raw["time"], raw.get("start"), raw.get("end"))
    shared = _SHARED.get(key)
    if shared is None:
        time, start, end = key
        current = Period(datetime.fromisoformat(start), datetime.fromisoformat(end)) if start and end else None
        shared = Billing(BillingTime(time), current)
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        _SHARED[key] = shared
    return shared
