"""Lago's webhook deliveries (docs/lago-contract.md §5): verify the signature over the raw body, read the
type and the object it names, and say which sync event it asks for.

The body is a snapshot taken when Lago's job ran and deliveries are unordered, so the event only names
what to re-read (`sources/lago/refresher.py`); nothing of the body is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson

from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.events import Delivery, SyncEvent, Target, usage_key
from entitlements_sidecar.domain.ids import IdKind, id_problem
from entitlements_sidecar.logs import Throttled
from entitlements_sidecar.sources.lago.signatures import SignatureVerifier

log = logging.getLogger(__name__)
_event_errors = Throttled(log, every=60.0)

_TARGETS = {"subscription": Target.SUBSCRIPTION, "plan": Target.PLAN, "feature": Target.FEATURE}
_KEYS = {Target.SUBSCRIPTION: "external_id", Target.PLAN: "code", Target.FEATURE: "code"}
# The same rules as ids in gRPC requests: an id that fails them could not be re-read from Lago safely.
_KINDS = {Target.SUBSCRIPTION: IdKind.SUBSCRIPTION, Target.PLAN: IdKind.CODE, Target.FEATURE: IdKind.CODE}
# Other subscription.* types (trial_ended, usage_threshold_reached, ...) change nothing we keep.
AFFECTING = frozenset(
    {
        "subscription.started",
        "subscription.updated",
        "subscription.terminated",
        "subscription.canceled",
        "subscription.incomplete",
        "plan.updated",
        "plan.created",
        "feature.updated",
        "feature.deleted",
    }
)
_MAX_UNIQUE_KEY = 255


class LagoWebhooks:
    def __init__(self, verifier: SignatureVerifier) -> None:
        self._verifier = verifier

    async def decode(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        await self._verifier.verify(headers.get("X-Lago-Signature-Algorithm"), headers.get("X-Lago-Signature"), body)
        kind, event = parse(body)
        if kind == EVENTS_ERRORS:
            _report_event_errors(body)
        unique_key = headers.get("X-Lago-Unique-Key", "").strip()
        if not unique_key or len(unique_key) > _MAX_UNIQUE_KEY:
            raise InvalidArgumentError("X-Lago-Unique-Key", f"missing, or longer than {_MAX_UNIQUE_KEY} characters")
        return Delivery(kind, event, unique_key)


USAGE_ALERTS = ("alert.triggered", "alert.resolved")  # usage crossed a threshold (resolved: once Lago ships it)


EVENTS_ERRORS = "events.errors"  # events Lago took (200) and then could not count, about an hour later


def _report_event_errors(body: bytes) -> None:
    """Surface Lago's word that events it accepted were never counted (an unknown metric code, a missing
    property): one ERROR line naming how many and a few transaction ids."""
    payload = orjson.loads(body)
    errors = payload.get(payload.get("object_type")) if isinstance(payload, dict) else None
    if not isinstance(errors, dict):
        return
    summary = {k: v[:5] for k, v in errors.items() if isinstance(v, list) and v}
    counts = {k: len(v) for k, v in errors.items() if isinstance(v, list)}
    _event_errors.log(logging.ERROR, "events.errors", "Lago could not count events it accepted", counts=counts,
                      transaction_ids=summary)  # fmt: skip


def parse(body: bytes) -> tuple[str, SyncEvent | None]:
    """(webhook type, the event it asks for or None); InvalidArgumentError naming what is wrong."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgumentError("body", f"not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidArgumentError("body", "must be a JSON object")
    webhook_type, object_type = payload.get("webhook_type"), payload.get("object_type")
    if not isinstance(webhook_type, str) or not isinstance(object_type, str):
        raise InvalidArgumentError("webhook_type", "webhook_type and object_type must be strings")
    if webhook_type in USAGE_ALERTS:
        return webhook_type, _usage_alert(payload, webhook_type, object_type)
    if webhook_type not in AFFECTING:
        return webhook_type, None
    target = _TARGETS.get(object_type)
    obj = payload.get(object_type)
    if target is None or not isinstance(obj, dict):
        raise InvalidArgumentError(object_type, f"{webhook_type} must carry a {object_type!r} object")
    field = f"{object_type}.{_KEYS[target]}"
    key = obj.get(_KEYS[target])
    if not isinstance(key, str):
        raise InvalidArgumentError(field, "must be a string")
    problem = id_problem(key, _KINDS[target])
    if problem is not None:
        raise InvalidArgumentError(field, problem)
    return webhook_type, SyncEvent(target, key, webhook_type)


def _usage_alert(payload: dict[str, object], webhook_type: str, object_type: str) -> SyncEvent | None:
    """Re-read the subscription's usage of the alert's metric (docs/lago-usage.md, "Alerts"); alerts on
    amounts name no metric and change nothing we count."""
    alert = payload.get(object_type)
    if not isinstance(alert, dict):
        raise InvalidArgumentError(object_type, f"{webhook_type} must carry a {object_type!r} object")
    metric = alert.get("billable_metric_code")
    if metric is None:
        return None
    subscription = alert.get("external_subscription_id")
    for field, value, kind in (
        ("external_subscription_id", subscription, IdKind.SUBSCRIPTION),
        ("billable_metric_code", metric, IdKind.CODE),
    ):
        problem = "must be a string" if not isinstance(value, str) else id_problem(value, kind)
        if problem is not None:
            raise InvalidArgumentError(f"{object_type}.{field}", problem)
    assert isinstance(subscription, str) and isinstance(metric, str)  # checked above
    return SyncEvent(Target.USAGE, usage_key(subscription, metric), webhook_type)
