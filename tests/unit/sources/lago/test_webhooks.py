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
