"""Lago's own count of a metric in a subscription's current period (domain/usage.py `UsageSource`), read
from `GET /customers/{id}/current_usage?billable_metric_code=...&apply_taxes=false`.

Units are decimal strings; counters hold whole units, so a fraction is rounded up (towards the quota).
Several charges may price one metric: each reports the same events' units, so the largest is taken, not the
sum. Lago's answer counts only for the period it names: when its `from_datetime` is not the period being
counted (a period we estimated, or Lago's clock on the other side of a rollover), it says nothing.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from entitlements_sidecar.domain.errors import SourceRejectedError, SourceUnavailableError
from entitlements_sidecar.domain.model import ResolvedSubscription
from entitlements_sidecar.domain.periods import Period
from entitlements_sidecar.logs import Throttled
from entitlements_sidecar.sources.lago.client import LagoClient

log = logging.getLogger(__name__)
_problems = Throttled(log, every=30.0)


class LagoCurrentUsage:
    def __init__(self, client: LagoClient) -> None:
        self._client = client
        self.reads = 0

    async def units(self, subscription: ResolvedSubscription, metric_code: str, period: Period) -> int | None:
        self.reads += 1
        try:
            body = await self._client.get_current_usage(
                subscription.external_customer_id, subscription.external_id, metric_code
            )
        except (SourceUnavailableError, SourceRejectedError) as exc:
            _problems.log(logging.WARNING, "unreadable", "could not read Lago's current usage", error=str(exc))
            return None
        if body is None:
            return 0  # no active subscription at Lago: it counts nothing
        return self._units(body.get("customer_usage"), subscription.external_id, metric_code, period)

    @staticmethod
    def _units(usage: Any, subscription_id: str, metric_code: str, period: Period) -> int | None:
        try:
            start = datetime.fromisoformat(str(usage["from_datetime"])).astimezone(UTC)
            charges = [c for c in usage["charges_usage"] if c["billable_metric"]["code"] == metric_code]
            units = max((Decimal(str(c["units"])) for c in charges), default=Decimal(0))
        except (KeyError, TypeError, ValueError, InvalidOperation):
            _problems.log(
                logging.WARNING, "shape", "Lago's current usage could not be read", subscription=subscription_id
            )
            return None
        if start != period.start:
            _problems.log(
                logging.INFO, "period", "Lago's current period is another one; its usage is not folded in",
                subscription=subscription_id, lago_from=start.isoformat(), counting_from=period.start.isoformat(),
            )  # fmt: skip
            return None
        if not units.is_finite() or units < 0:
            return None
        return math.ceil(units)
