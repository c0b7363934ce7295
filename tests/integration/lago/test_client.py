"""The Lago client against the emulator over real sockets: shapes, paging, errors, retries, 429."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from entitlements_sidecar.sources.lago.client import EVERY_STATUS, LagoClient
from entitlements_sidecar.sources.lago.errors import LagoAuthError, LagoUnavailableError
from entitlements_sidecar.sources.lago.rate_limit import TokenBucket
from tests.integration.lago.conftest import seed
from tests.lago_emulator.server import LagoEmulator

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(lago: LagoEmulator) -> AsyncIterator[LagoClient]:
    lago_client = LagoClient(lago.url, lago.api_key, TokenBucket(2000), max_retries=2, backoff_base=0.01)
    yield lago_client
    await lago_client.close()


async def test_reads_every_endpoint(lago: LagoEmulator, client: LagoClient) -> None:
    seed(lago, subscriptions=250)
    lago.state.create_subscription("sub_0", "cust_0", "starter")  # a pending downgrade row
    rows = [r async for r in client.list_subscriptions(per_page=100)]
    assert len(rows) == 251 and {r["status"] for r in rows} == {"active", "pending"}
    assert "entitlements" not in rows[0]
    active = [r async for r in client.list_subscriptions(("active",), external_id="sub_7")]
    assert [r["external_id"] for r in active] == ["sub_7"]
    every = [r async for r in client.list_subscriptions(EVERY_STATUS, external_id="sub_0")]
    assert sorted(r["status"] for r in every) == ["active", "pending"]
    sub = await client.get_subscription("sub_0")
    assert sub is not None and sub["entitlements"][0]["code"] == "seats"
    pending = await client.get_subscription("sub_0", status="pending")
    assert pending is not None and pending["plan_code"] == "starter"
    assert await client.get_subscription("nope") is None
    entitlements = await client.get_subscription_entitlements("sub_0")
    assert entitlements is not None and {e["code"] for e in entitlements} == {"seats", "sso", "analytics.api"}
    plan = await client.get_plan_entitlements("pro")
    assert plan is not None and {e["code"] for e in plan} == {"seats", "sso", "analytics.api"}
    assert await client.get_plan_entitlements("nope") is None
    assert {f["code"] async for f in client.list_features(per_page=2)} == {"seats", "sso", "analytics.api"}
    assert (await client.get_webhook_public_key()).startswith(b"-----BEGIN PUBLIC KEY-----")


async def test_codes_with_dots_and_odd_characters_are_quoted(lago: LagoEmulator, client: LagoClient) -> None:
    seed(lago, subscriptions=0)
    lago.state.create_plan("pro.v2+eu", 100)
    lago.state.write_plan_entitlements("pro.v2+eu", {"analytics.api": {}}, True)
    lago.state.create_subscription("sub with space", "c", "pro.v2+eu")
    assert [e["code"] for e in await client.get_plan_entitlements("pro.v2+eu") or []] == ["analytics.api"]
    assert (await client.get_subscription("sub with space") or {}).get("plan_code") == "pro.v2+eu"


async def test_wrong_key_is_a_typed_error(lago: LagoEmulator) -> None:
    bad = LagoClient(lago.url, "wrong", TokenBucket(100), max_retries=0)
    with pytest.raises(LagoAuthError) as caught:
        await bad.get_subscription("x")
    assert caught.value.status == 401
    await bad.close()


async def test_5xx_is_retried_then_reported(lago: LagoEmulator, client: LagoClient) -> None:
    lago.controls.fail_status = 503
    with pytest.raises(LagoUnavailableError):
        await client.get_subscription("x")
    # Counted where they arrived (the emulator's log), not by the client's own counter.
    arrived = [r for r in lago.controls.api_requests() if r[2] == "/api/v1/subscriptions/x"]
    assert len(arrived) == 3  # the first try and two retries


async def test_429_pauses_until_the_window_resets(lago: LagoEmulator) -> None:
    seed(lago, subscriptions=1)
    lago.controls.rate_limit = 5  # per second on the server; the client believes it may send 1000
    greedy = LagoClient(lago.url, lago.api_key, TokenBucket(1000), max_retries=10)
    started = time.monotonic()
    for _ in range(12):
        assert await greedy.get_subscription("sub_0") is not None
    assert lago.controls.rate_limited >= 1  # it did hit the limit ...
    assert time.monotonic() - started >= 1.0  # ... and waited for the reset instead of failing
    await greedy.close()
