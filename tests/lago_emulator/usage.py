"""Lago's usage side, as docs/lago-usage.md describes it: billable metrics, event ingestion (single and
batch, on the Postgres event store's rules) and a subscription's current usage.

Rules kept here (from the shared document, not from the sidecar's code):
- only `transaction_id` and `code` are mandatory (422 `value_is_mandatory`); a bad timestamp is 422
  `invalid_format`; no timestamp means now;
- a repeated `transaction_id` for the same subscription is 422 `value_already_exist`;
- a batch holds 1 to 100 events (`no_events`, `too_many_events`); errors are keyed by the event's index, and
  one error rolls back the whole batch;
- an unknown metric code or subscription is accepted (200) and never counted;
- current usage is for an active subscription only (405 `no_active_subscription`), over the calendar month
  clamped to its start, with units as decimal strings; count and sum metrics are aggregated.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.lago_emulator.models import ApiError, Json, Subscription, iso, now

MAX_BATCH = 100


@dataclass
class BillableMetric:
    code: str
    aggregation_type: str  # count_agg, sum_agg, max_agg, unique_count_agg, latest_agg, weighted_sum_agg
    field_name: str | None = None
    name: str = ""


@dataclass
class UsageLedger:
    metrics: dict[str, BillableMetric] = field(default_factory=dict)
    events: list[Json] = field(default_factory=list)  # accepted, in arrival order
    _ids: set[tuple[str, str]] = field(default_factory=set)  # (external_subscription_id, transaction_id)

    def create_metric(self, code: str, aggregation_type: str, field_name: str | None = None) -> BillableMetric:
        metric = BillableMetric(code, aggregation_type, field_name, code)
        self.metrics[code] = metric
        return metric

    def ingest(self, raw_events: Any, batch: bool) -> list[Json]:
        """Accept events or raise ApiError(422) with Lago's details; a batch is all or nothing."""
        if batch:
            if not isinstance(raw_events, list) or not raw_events:
                raise ApiError(422, "validation_errors", {"events": ["no_events"]})
            if len(raw_events) > MAX_BATCH:
                raise ApiError(422, "validation_errors", {"events": ["too_many_events"]})
        accepted: list[Json] = []
        seen: set[tuple[str, str]] = set()
        errors: dict[str, Json] = {}
        for index, raw in enumerate(raw_events):
            problems, event = self._validate(raw, seen)
            if problems:
                errors[str(index)] = problems
            else:
                accepted.append(event)
        if errors:
            raise ApiError(422, "validation_errors", errors if batch else errors["0"])
        for event in accepted:
            self._ids.add((event["external_subscription_id"], event["transaction_id"]))
        self.events.extend(accepted)
        return accepted

    def _validate(self, raw: Any, seen: set[tuple[str, str]]) -> tuple[Json, Json]:
        if not isinstance(raw, dict):
            return {"event": ["invalid_format"]}, {}
        problems: Json = {}
        for key in ("transaction_id", "code"):
            if not raw.get(key):
                problems[key] = ["value_is_mandatory"]
        timestamp = raw.get("timestamp")
        at = now()
        if timestamp is not None:
            try:
                at = datetime.fromtimestamp(float(timestamp), UTC)
            except (TypeError, ValueError, OverflowError):
                problems["timestamp"] = ["invalid_format"]
        subscription_id = str(raw.get("external_subscription_id") or "")
        pair = (subscription_id, str(raw.get("transaction_id") or ""))
        if raw.get("transaction_id") and (pair in self._ids or pair in seen):
            problems["transaction_id"] = ["value_already_exist"]
        seen.add(pair)
        event = {
            "transaction_id": raw.get("transaction_id"),
            "code": raw.get("code"),
            "external_subscription_id": subscription_id,
            "timestamp": at,
            "properties": raw.get("properties") or {},
        }
        return problems, event

    def current_usage(self, row: Subscription, metric_code: str | None, at: datetime | None = None) -> Json:
        if row.status != "active":
            raise ApiError(405, "no_active_subscription")
        start, end = billing_period(at or now(), row)
        charges = []
        for metric in sorted(self.metrics.values(), key=lambda m: m.code):
            if metric_code is not None and metric.code != metric_code:
                continue
            counted = [
                e
                for e in self.events
                if e["code"] == metric.code and e["external_subscription_id"] == row.external_id
                and start <= e["timestamp"] <= end
            ]  # fmt: skip
            charges.append(
                {
                    "units": str(self._units(metric, counted)),
                    "events_count": len(counted),
                    "amount_cents": 0,
                    "amount_currency": "USD",
                    "charge": {"lago_id": f"charge-{metric.code}", "code": metric.code, "charge_model": "standard"},
                    "billable_metric": {
                        "lago_id": f"bm-{metric.code}",
                        "name": metric.name,
                        "code": metric.code,
                        "aggregation_type": metric.aggregation_type,
                    },
                    "filters": [],
                    "grouped_usage": [],
                }
            )
        return {
            "customer_usage": {
                "from_datetime": iso(start),
                "to_datetime": iso(end),
                "issuing_date": (end + timedelta(seconds=1)).date().isoformat(),
                "currency": "USD",
                "amount_cents": 0,
                "total_amount_cents": 0,
                "taxes_amount_cents": 0,
                "lago_invoice_id": None,
                "charges_usage": charges,
            }
        }

    @staticmethod
    def _units(metric: BillableMetric, events: list[Json]) -> Decimal:
        if metric.aggregation_type == "count_agg":
            return Decimal(len(events))
        if metric.aggregation_type == "sum_agg":
            total = Decimal(0)
            for event in events:
                try:
                    total += Decimal(str(event["properties"].get(metric.field_name, 0)))
                except InvalidOperation:
                    continue  # Lago ignores a value it cannot read
            return total
        raise ApiError(422, "unsupported_aggregation")  # the emulator aggregates count and sum only


def billing_period(at: datetime, row: Subscription) -> tuple[datetime, datetime]:
    """The row's current billing period (monthly plans): the calendar month, or from the day of the month
    the subscription started (the month's last day when it is shorter); clamped to the start."""
    if row.billing_time != "anniversary" or row.started_at is None:
        return calendar_period(at, row.started_at)
    day = row.started_at.day

    def on(year: int, month: int) -> datetime:
        return datetime(year, month, min(day, calendar.monthrange(year, month)[1]), tzinfo=UTC)

    year, month = at.year, at.month
    if on(year, month) > at:
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    nxt = (year + 1, 1) if month == 12 else (year, month + 1)
    return max(on(year, month), row.started_at), on(*nxt) - timedelta(seconds=1)


def calendar_period(at: datetime, started_at: datetime | None) -> tuple[datetime, datetime]:
    """The calendar month holding `at`, its start clamped to the subscription's start, ending 23:59:59."""
    first = datetime(at.year, at.month, 1, tzinfo=UTC)
    last_day = calendar.monthrange(at.year, at.month)[1]
    end = datetime(at.year, at.month, last_day, 23, 59, 59, tzinfo=UTC)
    return (max(first, started_at) if started_at else first), end
