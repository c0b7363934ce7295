"""Usage over gRPC against real sidecar processes on a real Redis: consume within the quota, report,
idempotency, per-item errors, and racing consumers in two processes that never pass a hard quota."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.gen.entitlements.v1 import usage_pb2 as upb
from entitlements_sidecar.gen.entitlements.v1 import usage_pb2_grpc as upb_grpc
from tests.support.processes import RedisServer, Sidecar, start_sidecar

pytestmark = pytest.mark.integration

CATALOG = """
features:
  - code: api
    privileges:
      - {code: calls_included, value_type: integer}
      - {code: calls_max, value_type: integer}
  - code: llm
    privileges: [{code: tokens_max, value_type: integer}]
plans:
  - code: pro
    entitlements:
      api: {calls_included: 10, calls_max: 25}
      llm: {tokens_max: 1000}
subscriptions:
  - {external_id: sub_a, external_customer_id: acme, plan_code: pro, status: active}
  - {external_id: sub_b, external_customer_id: acme, plan_code: pro, status: active}
meters:
  - {metric: api_calls, feature: api, aggregation: sum, property: calls, allowance: calls_included, quota: calls_max}
  - {metric: tokens, feature: llm, aggregation: sum, property: tokens, quota: tokens_max}
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "usage-catalog.yaml"
    path.write_text(CATALOG)
    return path


@pytest.fixture
def pair(
    tmp_path: Path, catalog: Path, redis_server: RedisServer, key_prefix: str
) -> Iterator[tuple[Sidecar, Sidecar]]:
    common = ["--store", "redis", "--redis-url", redis_server.url, "--redis-key-prefix", key_prefix]
    first = start_sidecar(tmp_path, catalog, common, name="first")
    second = start_sidecar(tmp_path, catalog, common, name="second")
    yield first, second
    second.terminate()
    first.terminate()


def usage(sidecar: Sidecar) -> upb_grpc.UsageServiceStub:
    return upb_grpc.UsageServiceStub(sidecar.channel)


def consume(sidecar: Sidecar, value: int, transaction_id: str, subscription: str = "sub_a") -> upb.ConsumeUsageResponse:
    request = upb.ConsumeUsageRequest(
        subscription_id=subscription, feature_code="api", value=value, transaction_id=transaction_id
    )
    return usage(sidecar).ConsumeUsage(request, timeout=5)


def test_consume_within_the_allowance_then_billable_then_refused(pair: tuple[Sidecar, Sidecar]) -> None:
    first, second = pair
    within = consume(first, 8, "t1")
    assert (within.allowed, within.reason, within.recorded) == (True, pb.USAGE_REASON_WITHIN_ALLOWANCE, True)
    assert (within.usage.used, within.usage.allowance, within.usage.quota, within.usage.remaining) == (0, 10, 25, 17)
    billable = consume(second, 5, "t2")  # another process, the same counter
    assert (billable.reason, billable.usage.used, billable.usage.billable) == (pb.USAGE_REASON_OVER_ALLOWANCE, 8, 3)
    refused = consume(first, 20, "t3")
    assert (refused.allowed, refused.reason, refused.recorded) == (False, pb.USAGE_REASON_OVER_QUOTA, False)
    again = consume(second, 8, "t1")  # a retry of the first call
    assert (again.duplicate, again.recorded, again.usage.used) == (True, False, 13)
    check = usage(first).CheckUsage(
        upb.CheckUsageRequest(subscription_id="sub_a", feature_code="api", requested=12), timeout=5
    )
    assert (check.allowed, check.usage.used, check.usage.remaining) == (True, 13, 0)
    assert check.usage.period_start.seconds < check.usage.period_end.seconds


def test_racing_consumers_in_two_processes_never_pass_the_quota(pair: tuple[Sidecar, Sidecar]) -> None:
    recorded: list[bool] = []
    lock = threading.Lock()

    def worker(sidecar: Sidecar, index: int) -> None:
        for n in range(5):
            answer = consume(sidecar, 1, f"race-{index}-{n}", subscription="sub_b")
            with lock:
                recorded.append(answer.recorded)

    threads = [threading.Thread(target=worker, args=(pair[i % 2], i)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads) and len(recorded) == 80
    assert sum(recorded) == 25  # exactly the quota, however the 80 calls interleaved
    final = consume(pair[0], 1, "after", subscription="sub_b")
    assert (final.recorded, final.usage.used) == (False, 25)


def test_reported_usage_counts_and_bad_items_fail_alone(pair: tuple[Sidecar, Sidecar]) -> None:
    first, _ = pair
    events = [
        upb.ReportUsageRequest(
            subscription_id="sub_a", metric_code="tokens", properties={"tokens": "600"}, transaction_id="e1"
        ),
        upb.ReportUsageRequest(
            subscription_id="sub_a", metric_code="tokens", properties={"tokens": "1.5"}, transaction_id="e2"
        ),
        upb.ReportUsageRequest(subscription_id="sub_a", metric_code="nope", transaction_id="e3"),
        upb.ReportUsageRequest(
            subscription_id="sub_a", metric_code="tokens", properties={"tokens": "1"}, transaction_id="e1"
        ),
        upb.ReportUsageRequest(
            subscription_id="sub_a", metric_code="tokens", properties={"tokens": "600"}, transaction_id="e4"
        ),
    ]
    results = usage(first).ReportUsages(upb.ReportUsagesRequest(events=events), timeout=5).results
    assert [r.WhichOneof("outcome") for r in results] == ["response", "error", "error", "error", "response"]
    assert [r.error.field for r in results if r.HasField("error")] == [
        "events[1].properties.tokens",
        "events[2].metric_code",
        "events[3].transaction_id",
    ]
    assert results[4].response.used == 1200  # reported usage is never refused...
    check = usage(first).CheckUsage(
        upb.CheckUsageRequest(subscription_id="sub_a", feature_code="llm", requested=1), timeout=5
    )
    assert (check.allowed, check.reason) == (False, pb.USAGE_REASON_OVER_QUOTA)  # ...the next use is


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (
            upb.ConsumeUsageRequest(subscription_id="sub_a", feature_code="seats", value=1, transaction_id="x"),
            "feature_code",
        ),
        (upb.ConsumeUsageRequest(subscription_id="sub_a", feature_code="api", value=0, transaction_id="x"), "value"),
        (upb.ConsumeUsageRequest(subscription_id="sub_a", feature_code="api", value=1), "transaction_id"),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_field(
    pair: tuple[Sidecar, Sidecar], request_: upb.ConsumeUsageRequest, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        usage(pair[0]).ConsumeUsage(request_, timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and str(caught.value.details()).startswith(field)


def test_garbage_bytes_are_invalid_argument(pair: tuple[Sidecar, Sidecar]) -> None:
    method: grpc.UnaryUnaryMultiCallable[bytes, bytes] = pair[0].channel.unary_unary(
        "/entitlements.v1.UsageService/ConsumeUsage"
    )
    with pytest.raises(grpc.RpcError) as caught:
        method(b"\xff\xff\xff", timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_the_embedded_mode_counts_in_memory(tmp_path: Path, catalog: Path) -> None:
    sidecar = start_sidecar(tmp_path, catalog, [], name="embedded")
    try:
        assert consume(sidecar, 25, "all").recorded
        assert not consume(sidecar, 1, "one-more").recorded
    finally:
        sidecar.terminate()


def check(
    sidecar: Sidecar, requested: int, subscription: str = "sub_a", customer: str = ""
) -> pb.CheckEntitlementResponse:
    request = pb.CheckEntitlementRequest(
        subscription_id="" if customer else subscription,
        customer_id=customer,
        feature_code="api",
        requested_usage=requested,
    )
    return pb_grpc.EntitlementServiceStub(sidecar.channel).CheckEntitlement(request, timeout=5)


def test_a_check_with_a_requested_usage_answers_with_the_usage_and_is_never_cached(
    pair: tuple[Sidecar, Sidecar],
) -> None:
    first, second = pair
    within = check(first, 4)
    assert (within.allowed, within.reason, within.usage.used, within.usage.remaining) == (
        True, pb.REASON_ENTITLED, 0, 21,
    )  # fmt: skip
    assert (within.usage.allowance, within.usage.quota, within.usage.metric_code) == (10, 25, "api_calls")
    assert within.usage.period_start.seconds > 0 and within.usage.period_end.seconds > within.usage.period_start.seconds
    consume(second, 12, "t1")  # another sidecar uses 12
    again = check(first, 4)  # the same request bytes: answered fresh, not from the answer cache
    assert (again.allowed, again.reason, again.usage.used, again.usage.billable) == (
        True, pb.REASON_USAGE_OVER_ALLOWANCE, 12, 4,
    )  # fmt: skip
    refused = check(first, 20)
    assert (refused.allowed, refused.reason, refused.usage.remaining) == (False, pb.REASON_USAGE_OVER_QUOTA, 13)
    by_customer = check(first, 1, customer="acme")  # counted on the subscription that grants the feature
    assert by_customer.subscription_id in ("sub_a", "sub_b") and by_customer.usage.metric_code == "api_calls"
    assert consume(first, 1, "t2").usage.used == 12  # a check records nothing


def test_a_requested_usage_on_an_unmetered_feature_or_below_one_names_the_field(pair: tuple[Sidecar, Sidecar]) -> None:
    stub = pb_grpc.EntitlementServiceStub(pair[0].channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.CheckEntitlement(
            pb.CheckEntitlementRequest(subscription_id="sub_a", feature_code="llm_x", requested_usage=1), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and str(caught.value.details()).startswith(
        "requested_usage"
    )
    batch = stub.CheckEntitlements(
        pb.CheckEntitlementsRequest(
            checks=[
                pb.CheckEntitlementRequest(subscription_id="sub_a", feature_code="api", requested_usage=0),
                pb.CheckEntitlementRequest(subscription_id="sub_a", feature_code="api", requested_usage=2),
            ]
        ),
        timeout=5,
    )
    assert batch.results[0].error.field == "checks[0].requested_usage"
    assert batch.results[1].response.usage.requested == 2


def test_get_and_watch_carry_each_metered_features_usage(pair: tuple[Sidecar, Sidecar]) -> None:
    first, _ = pair
    consume(first, 7, "t1")
    stub = pb_grpc.EntitlementServiceStub(first.channel)
    got = stub.GetEntitlements(pb.GetEntitlementsRequest(subscription_id="sub_a"), timeout=5).entitlements
    usage = {feature.code: feature.usage for feature in got.features}
    assert (usage["api"].used, usage["api"].requested, usage["api"].quota) == (7, 0, 25)
    assert usage["llm"].metric_code == "tokens" and usage["llm"].used == 0
    stream = stub.WatchEntitlements(
        pb.WatchEntitlementsRequest(subjects=[pb.Subject(subscription_id="sub_a")]), timeout=5
    )
    initial = next(iter(stream))
    stream.cancel()
    assert {f.code: f.usage.used for f in initial.entitlements.features} == {"api": 7, "llm": 0}


def test_the_python_client_consumes_and_checks_usage_live_even_for_a_watched_subject(
    pair: tuple[Sidecar, Sidecar],
) -> None:
    from entitlements_sidecar.client import EntitlementsClient

    first, second = pair
    with EntitlementsClient(first.address, timeout=5) as client:
        client.watch(subscription_ids=["sub_a"])
        assert client.check("api", "sub_a").source == "local"  # answered in-process
        used = client.consume("api", "sub_a", 11, "t1")
        assert (used.allowed, used.reason, used.recorded, used.usage.billable) == (True, "over_allowance", True, 1)
        consume(second, 10, "t2")  # another sidecar: 21 of 25 used
        live = client.check("api", "sub_a", requested_usage=5)
        assert (live.allowed, live.reason, live.source != "local") == (False, "usage_over_quota", True)
        assert live.usage is not None and (live.usage.used, live.usage.remaining, live.usage.quota) == (21, 4, 25)
        assert client.consume("api", "sub_a", 11, "t1").duplicate


def test_each_period_has_its_own_counter_and_late_usage_counts_in_its_own_period(pair: tuple[Sidecar, Sidecar]) -> None:
    from datetime import UTC, datetime, timedelta

    from google.protobuf.timestamp_pb2 import Timestamp

    first, second = pair
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = Timestamp()
    last_month.FromDatetime(this_month - timedelta(days=3))
    late = upb.ReportUsageRequest(subscription_id="sub_a", metric_code="tokens", properties={"tokens": "900"},
                                  transaction_id="late", timestamp=last_month)  # fmt: skip
    assert usage(first).ReportUsage(late, timeout=5).used == 900  # last month's counter
    now = usage(second).CheckUsage(upb.CheckUsageRequest(subscription_id="sub_a", feature_code="llm", requested=200),
                                   timeout=5)  # fmt: skip
    assert (now.allowed, now.usage.used, now.usage.period_start.ToDatetime(UTC)) == (True, 0, this_month)
