"""Usage for a subscription: check a requested usage, report usage, and consume (check and record in one
atomic step), over the resolved map (allowances and quotas are privileges), the meters and the counters.

Every request is validated before anything is counted: an unknown metric, a feature without a meter, a
value that cannot be counted exactly or a timestamp in the future is an InvalidArgumentError naming the
field, and nothing is recorded. With `forward`, each recorded use is queued for Lago as an event in the
same step that counts it (what is counted is what Lago is sent).

With a `source` (Lago mode), a period's counter starts from the source's own count the first time it is
needed, so usage that reached Lago by other paths, or counters Redis lost, are counted; when the source
cannot say, counting starts from 0 and healing (sync/usage_healer.py) folds Lago's count in later.

When the shared counters cannot be reached, the meter's `on_failure` answers, flagged (FAILURE_POLICY,
`fallback`): fail_closed denies uses (reports are UNAVAILABLE, so the caller retries them); fail_open allows
and counts them in this sidecar (`fallback`), to be added to the shared counters once they answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from entitlements_sidecar.domain.clock import now_ms
from entitlements_sidecar.domain.errors import InvalidArgumentError, StoreUnavailableError
from entitlements_sidecar.domain.ids import IdKind, id_problem
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.model import ResolvedSubscription
from entitlements_sidecar.domain.periods import Billing, Period, period_for
from entitlements_sidecar.domain.ports import EntitlementStore
from entitlements_sidecar.domain.usage import (
    Aggregation,
    Counted,
    Meter,
    Meters,
    OnFailure,
    Recorded,
    UsageCounter,
    UsageDecision,
    UsageEvent,
    UsageFallback,
    UsageKey,
    UsageLimits,
    UsageReason,
    UsageSource,
    decide_usage,
    event_value,
    limits_for,
)

_FUTURE_SLACK = timedelta(minutes=5)  # clocks differ a little; an event from further ahead is a mistake


@dataclass(frozen=True, slots=True)
class UsageAnswer:
    decision: UsageDecision
    period: Period
    metric_code: str
    recorded: bool = False  # consume and report: the usage was counted by this call
    duplicate: bool = False  # the transaction id was counted before: nothing was added
    reconciled_ms: int | None = None  # when the source's count was last folded in; None: counted here only
    fallback: bool = False  # the shared counters were unreachable: the meter's failure policy answered


class UsageService:
    def __init__(
        self,
        store: EntitlementStore,
        map_status: MapStatus,  # a subscription the map lacks is "not entitled" only while it is complete
        meters: Callable[[], Meters],  # the meters now (a catalog's change to them applies at once)
        counter: UsageCounter,
        forward: bool,  # queue every recorded use for Lago (off: the team sends its events itself)
        source: UsageSource | None = None,  # seeds new counters from the source's count (Lago mode)
        fallback: UsageFallback | None = None,  # where fail-open meters count while the counters are away
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._source = source
        self._fallback = fallback
        self._map = map_status
        self._store = store
        self._meters = meters
        self._counter = counter
        self._forward = forward
        self._clock = clock

    def metered(self, feature_code: str) -> bool:
        return feature_code in self._meters().by_feature

    async def check(self, subscription_id: str, feature_code: str, requested: int) -> UsageAnswer:
        """Would `requested` more units be allowed now? Nothing is recorded."""
        _positive(requested, "requested_usage")
        return await self._answer(subscription_id, feature_code, requested)

    async def current(self, subscription_id: str, feature_code: str) -> UsageAnswer:
        """The period's usage so far (nothing requested)."""
        return await self._answer(subscription_id, feature_code, 0)

    async def _answer(self, subscription_id: str, feature_code: str, requested: int) -> UsageAnswer:
        meter = self._meter_of_feature(feature_code)
        subscription = await self._subscription(subscription_id)
        period = self._period(subscription, self._clock())
        key = UsageKey(subscription_id, meter.metric_code, period.start_ms)
        limits = _limits(subscription, meter)
        try:
            counted = await self._counter.read(key)
            if counted is None and subscription is not None and limits is not None:
                counted = await self._seed(key, subscription, period)
        except StoreUnavailableError:
            if limits is None:
                raise
            local = await self._fallback.read(key) if self._fallback is not None else None
            decision = _policy(meter, local.used if local else 0, requested, limits)
            return UsageAnswer(decision, period, meter.metric_code, fallback=True)
        used, reconciled = (counted.used, counted.reconciled_ms) if counted else (0, None)
        return UsageAnswer(decide_usage(used, requested, limits), period, meter.metric_code, reconciled_ms=reconciled)

    async def consume(self, subscription_id: str, feature_code: str, value: int, transaction_id: str) -> UsageAnswer:
        """Record `value` only if it stays within the quota, in one step across every sidecar."""
        _positive(value, "value")
        _transaction(transaction_id, "transaction_id")
        meter = self._meter_of_feature(feature_code)
        if meter.aggregation is Aggregation.COUNT and value != 1:
            # Lago counts a count metric's events, not a value: one use is one event.
            raise InvalidArgumentError(
                "value", f"metric {meter.metric_code!r} counts events: each use is 1 (a sum meter takes a quantity)"
            )
        subscription = await self._subscription(subscription_id)
        limits = _limits(subscription, meter)
        now = self._clock()
        period = self._period(subscription, now)
        key = UsageKey(subscription_id, meter.metric_code, period.start_ms)
        if subscription is None or limits is None:  # not entitled: nothing to record against
            return UsageAnswer(decide_usage(0, value, None), period, meter.metric_code)
        properties = {meter.property: str(value)} if meter.property is not None else {}
        event = self._event(transaction_id, subscription_id, meter.metric_code, now, properties)
        seeded_only = self._source is not None

        async def record() -> Recorded:
            return await self._counter.record(key, value, transaction_id, limits.quota, event, seeded_only)

        try:
            result = await record()
            if result.unseeded:  # the period's first use: start from the source's count, then count this one
                await self._seed(key, subscription, period)
                result = await record()
        except StoreUnavailableError:
            return await self._consume_fallback(meter, key, value, transaction_id, event, limits, period)
        reconciled = result.reconciled_ms
        if result.duplicate:  # counted by its first call: nothing is added now, so nothing is requested
            decision = decide_usage(result.used, 0, limits)
            return UsageAnswer(decision, period, meter.metric_code, False, True, reconciled)
        before = result.used - value if result.recorded else result.used
        decision = decide_usage(before, value, limits)
        return UsageAnswer(decision, period, meter.metric_code, result.recorded, reconciled_ms=reconciled)

    async def report(
        self,
        subscription_id: str,
        metric_code: str,
        properties: Mapping[str, object],
        transaction_id: str,
        timestamp: datetime | None = None,
        where: str = "",
    ) -> Recorded:
        """Count usage that happened (never refused by the quota: it was used already)."""
        meter = self._meters().by_metric.get(metric_code)
        if meter is None:
            raise InvalidArgumentError(f"{where}metric_code", f"no meter counts metric {metric_code!r}")
        _transaction(transaction_id, f"{where}transaction_id")
        value = event_value(meter, properties, f"{where}properties")
        now = self._clock()
        at = timestamp or now
        if at > now + _FUTURE_SLACK:
            raise InvalidArgumentError(f"{where}timestamp", "is in the future")
        subscription = await self._subscription(subscription_id, f"{where}subscription_id")
        if subscription is None or _limits(subscription, meter) is None:
            # Lago would take it and never count it (docs/lago-usage.md): say so now instead.
            why = "is not in the map" if subscription is None else f"is not entitled to {meter.feature_code!r}"
            raise InvalidArgumentError(f"{where}subscription_id", f"{subscription_id!r} {why}")
        period = self._period(subscription, at)
        key = UsageKey(subscription_id, metric_code, period.start_ms)
        event = self._event(transaction_id, subscription_id, metric_code, at, properties)
        seeded_only = self._source is not None
        try:
            result = await self._counter.record(key, value, transaction_id, event=event, seeded_only=seeded_only)
            if result.unseeded:
                await self._seed(key, subscription, period)
                result = await self._counter.record(key, value, transaction_id, event=event, seeded_only=seeded_only)
        except StoreUnavailableError:
            if meter.on_failure is not OnFailure.FAIL_OPEN or self._fallback is None:
                raise  # UNAVAILABLE: the caller keeps the report and sends it again
            spilled = await self._fallback.record(key, value, transaction_id, event)
            return replace(spilled, fallback=True)
        return result

    async def _consume_fallback(
        self,
        meter: Meter,
        key: UsageKey,
        value: int,
        transaction_id: str,
        event: UsageEvent | None,
        limits: UsageLimits,
        period: Period,
    ) -> UsageAnswer:
        if meter.on_failure is OnFailure.FAIL_OPEN and self._fallback is not None:
            with contextlib.suppress(StoreUnavailableError):  # full: fail closed below
                spilled = await self._fallback.record(key, value, transaction_id, event)
                before = spilled.used - value if spilled.recorded else spilled.used
                decision = _policy(meter, before, value, limits)
                return UsageAnswer(
                    decision, period, meter.metric_code, spilled.recorded, spilled.duplicate, fallback=True
                )
        decision = _policy(replace(meter, on_failure=OnFailure.FAIL_CLOSED), 0, value, limits)
        return UsageAnswer(decision, period, meter.metric_code, fallback=True)

    async def _seed(self, key: UsageKey, subscription: ResolvedSubscription, period: Period) -> Counted:
        """Create the period's counter from the source's count (0 and unreconciled when it cannot say).
        Racing seeders agree: the counter only ever takes the larger count."""
        units = await self._source.units(subscription, key.metric_code, period) if self._source else None
        reconciled = now_ms() if units is not None else None
        _, after = await self._counter.raise_to(key, units or 0, reconciled)
        counted = await self._counter.read(key)
        return counted if counted is not None else Counted(after, reconciled)

    def _event(
        self, transaction_id: str, subscription_id: str, metric: str, at: datetime, properties: Mapping[str, object]
    ) -> UsageEvent | None:
        if not self._forward:
            return None
        values = {str(name): str(value) for name, value in properties.items()}
        return UsageEvent(transaction_id, subscription_id, metric, at.timestamp(), values)

    def _meter_of_feature(self, feature_code: str) -> Meter:
        meter = self._meters().by_feature.get(feature_code)
        if meter is None:
            raise InvalidArgumentError("feature_code", f"feature {feature_code!r} has no meter")
        return meter

    async def _subscription(self, subscription_id: str, field: str = "subscription_id") -> ResolvedSubscription | None:
        problem = id_problem(subscription_id, IdKind.SUBSCRIPTION)
        if problem is not None:
            raise InvalidArgumentError(field, problem)
        record = await self._store.get_subscription(subscription_id)  # limits: the L1 is as fresh as a check
        if record is None:
            self._map.require_complete()  # else NotReadyError (UNAVAILABLE): it may exist
            return None
        return record.subscription

    def _period(self, subscription: ResolvedSubscription | None, at: datetime) -> Period:
        if subscription is None:
            return period_for(at, None, Billing())
        return period_for(at, subscription.started_at, subscription.billing)


def _policy(meter: Meter, used: int, requested: int, limits: UsageLimits) -> UsageDecision:
    """The failure policy's answer; `used`: what this sidecar counted while the counters were away."""
    allowed = meter.on_failure is OnFailure.FAIL_OPEN
    return UsageDecision(allowed, UsageReason.FAILURE_POLICY, used, requested, limits.allowance, limits.quota, None, 0)


def _limits(subscription: ResolvedSubscription | None, meter: Meter) -> UsageLimits | None:
    return limits_for(subscription, meter) if subscription is not None else None


def _positive(value: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidArgumentError(field, f"must be a positive whole number, got {value!r}")


def _transaction(transaction_id: str, field: str) -> None:
    if not transaction_id or len(transaction_id) > 255 or transaction_id != transaction_id.strip():
        raise InvalidArgumentError(field, "is required: 1 to 255 characters without surrounding whitespace")
