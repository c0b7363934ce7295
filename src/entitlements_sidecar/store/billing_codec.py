"""A subscription's billing (domain/periods.py `Billing`) in the store's JSON: `{"time", "start", "end"}`,
or absent (records written before usage counting: the calendar month)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from entitlements_sidecar.domain.periods import Billing, BillingTime, Period


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
        return Billing()
    start, end = raw.get("start"), raw.get("end")
    current = Period(datetime.fromisoformat(start), datetime.fromisoformat(end)) if start and end else None
    return Billing(BillingTime(raw["time"]), current)
