"""What Lago's usage alerts ask for: re-read one subscription's usage of the alert's metric."""

from __future__ import annotations

import orjson
import pytest

from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.events import SyncEvent, Target, usage_key
from entitlements_sidecar.sources.lago.webhooks import parse


def alert(webhook_type: str = "alert.triggered", **fields: object) -> bytes:
    body = {"lago_alert_id": "a1", "external_subscription_id": "sub_0", "billable_metric_code": "api_calls", **fields}
    return orjson.dumps({"webhook_type": webhook_type, "object_type": "triggered_alert", "triggered_alert": body})


@pytest.mark.parametrize("webhook_type", ["alert.triggered", "alert.resolved"])
def test_a_metric_alert_asks_for_that_subscriptions_usage(webhook_type: str) -> None:
    assert parse(alert(webhook_type)) == (
        webhook_type,
        SyncEvent(Target.USAGE, usage_key("sub_0", "api_calls"), webhook_type),
    )


def test_an_amount_alert_names_no_metric_and_asks_for_nothing() -> None:
    assert parse(alert(billable_metric_code=None, alert_type="current_usage_amount")) == ("alert.triggered", None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"external_subscription_id": 7}, "triggered_alert.external_subscription_id"),
        ({"external_subscription_id": "a/b"}, "triggered_alert.external_subscription_id"),
        ({"billable_metric_code": " x"}, "triggered_alert.billable_metric_code"),
    ],
)
def test_a_bad_alert_names_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse(alert("alert.triggered", **fields))
    assert caught.value.field == field


async def test_lagos_events_errors_are_logged_as_errors_and_ask_for_nothing(caplog: pytest.LogCaptureFixture) -> None:
    from entitlements_sidecar.sources.lago.signatures import SignatureVerifier
    from entitlements_sidecar.sources.lago.webhooks import LagoWebhooks

    body = orjson.dumps(
        {
            "webhook_type": "events.errors",
            "object_type": "events_errors",
            "events_errors": {"invalid_code": ["t1", "t2"], "missing_aggregation_property": ["t3"]},
        }
    )
    headers = {"X-Lago-Signature-Algorithm": "hmac", "X-Lago-Signature": _hmac(body), "X-Lago-Unique-Key": "k1"}
    with caplog.at_level("ERROR"):
        delivery = await LagoWebhooks(SignatureVerifier("secret", _no_key)).decode(headers, body)
    assert (delivery.kind, delivery.event) == ("events.errors", None)
    [record] = [r for r in caplog.records if "could not count events" in r.getMessage()]
    assert record.counts == {"invalid_code": 2, "missing_aggregation_property": 1}  # type: ignore[attr-defined]


def _hmac(body: bytes) -> str:
    import base64
    import hashlib
    import hmac

    return base64.b64encode(hmac.new(b"secret", body, hashlib.sha256).digest()).decode()


async def _no_key() -> bytes:
    raise AssertionError("hmac deliveries need no public key")
