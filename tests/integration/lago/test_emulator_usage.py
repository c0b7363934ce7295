"""The emulator's usage side behaves as docs/lago-usage.md says Lago does: what later usage work is tested
against must itself be right. Real HTTP, the emulator's own server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.lago.conftest import seed
from tests.lago_emulator.server import LagoEmulator

pytestmark = pytest.mark.integration


@pytest.fixture
def api(lago: LagoEmulator) -> Iterator[httpx.Client]:
    seed(lago, subscriptions=2)
    lago.state.usage.create_metric("api_calls", "count_agg")
    lago.state.usage.create_metric("tokens", "sum_agg", field_name="tokens")
    headers = {"Authorization": f"Bearer {lago.api_key}"}
    with httpx.Client(base_url=f"{lago.url}/api/v1", headers=headers, timeout=5) as client:
        yield client


def event(transaction_id: str, code: str = "api_calls", subscription: str = "sub_0", **extra: Any) -> dict[str, Any]:
    return {"transaction_id": transaction_id, "code": code, "external_subscription_id": subscription, **extra}


def units(api: httpx.Client, metric: str, subscription: str = "sub_0", customer: str = "cust_0") -> str:
    query = {"external_subscription_id": subscription, "billable_metric_code": metric, "apply_taxes": "false"}
    answer = api.get(f"/customers/{customer}/current_usage", params=query)
    assert answer.status_code == 200, answer.text
    [charge] = answer.json()["customer_usage"]["charges_usage"]
    return str(charge["units"])


def test_events_count_once_by_transaction_id(api: httpx.Client) -> None:
    assert api.post("/events", json={"event": event("t1")}).status_code == 200
    again = api.post("/events", json={"event": event("t1")})
    assert again.status_code == 422 and again.json()["error_details"] == {"transaction_id": ["value_already_exist"]}
    tokens = {"tokens": 120}
    assert api.post("/events", json={"event": event("t2", "tokens", properties=tokens)}).status_code == 200
    assert (units(api, "api_calls"), units(api, "tokens")) == ("1", "120")  # units are decimal strings


def test_a_batch_is_all_or_nothing_and_at_most_100(api: httpx.Client) -> None:
    batch = [event("b1"), event("b2"), event("b1")]  # one duplicate rolls back the whole batch
    refused = api.post("/events/batch", json={"events": batch})
    assert refused.status_code == 422 and refused.json()["error_details"] == {
        "2": {"transaction_id": ["value_already_exist"]}
    }
    assert units(api, "api_calls") == "0"
    assert api.post("/events/batch", json={"events": batch[:2]}).status_code == 200
    assert units(api, "api_calls") == "2"
    too_many = api.post("/events/batch", json={"events": [event(f"m{i}") for i in range(101)]})
    assert too_many.status_code == 422 and too_many.json()["error_details"] == {"events": ["too_many_events"]}
    empty = api.post("/events/batch", json={"events": []})
    assert empty.status_code == 422 and empty.json()["error_details"] == {"events": ["no_events"]}


def test_what_lago_takes_without_counting_and_what_it_refuses(api: httpx.Client) -> None:
    # An unknown metric or subscription is accepted and never counted.
    assert api.post("/events", json={"event": event("u1", code="nope")}).status_code == 200
    assert api.post("/events", json={"event": event("u2", subscription="sub_unknown")}).status_code == 200
    assert units(api, "api_calls") == "0"
    missing = api.post("/events", json={"event": {"code": "api_calls"}})
    assert missing.status_code == 422 and missing.json()["error_details"] == {"transaction_id": ["value_is_mandatory"]}
    bad_time = api.post("/events", json={"event": event("u3", timestamp="yesterday")})
    assert bad_time.status_code == 422 and bad_time.json()["error_details"] == {"timestamp": ["invalid_format"]}


def test_current_usage_is_the_periods_and_only_for_an_active_subscription(
    api: httpx.Client, lago: LagoEmulator
) -> None:
    from datetime import UTC, datetime, timedelta

    lago.state.find_row("sub_0").started_at = datetime.now(UTC) - timedelta(days=100)  # so only the month bounds
    last_month = time.time() - 40 * 86_400
    assert api.post("/events", json={"event": event("old", timestamp=last_month)}).status_code == 200
    assert api.post("/events", json={"event": event("new")}).status_code == 200
    assert units(api, "api_calls") == "1"  # last month's event is another period
    subscription = api.get("/subscriptions/sub_0").json()["subscription"]
    assert subscription["current_billing_period_started_at"] and subscription["current_billing_period_ending_at"]
    assert subscription["current_billing_period_ending_at"].endswith("23:59:59Z")
    assert api.get("/customers/nobody/current_usage", params={"external_subscription_id": "sub_0"}).status_code == 404
    lago.state.terminate("sub_0")
    gone = api.get("/customers/cust_0/current_usage", params={"external_subscription_id": "sub_0"})
    assert gone.status_code == 405 and gone.json()["code"] == "no_active_subscription"
