"""Every RPC over real sockets against a sidecar process backed by a real redis-server."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.support.processes import Sidecar, rpc_error
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def check(sidecar: Sidecar, **fields: Any) -> pb.CheckEntitlementResponse:
    return stub(sidecar).CheckEntitlement(pb.CheckEntitlementRequest(**fields), timeout=5)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


CASES: list[tuple[dict[str, Any], bool, int, tuple[str, Any] | None]] = [
    # (request fields, allowed, reason, expected value or None)
    ({"subscription_id": "sub_acme_main", "feature_code": "sso"}, True, pb.REASON_ENTITLED, None),
    (
        {"subscription_id": "sub_acme_main", "feature_code": "seats", "privilege_code": "max"},
        True,
        pb.REASON_ENTITLED,
        ("int_value", 25),
    ),
    (
        {"subscription_id": "sub_acme_main", "feature_code": "seats", "privilege_code": "max", "quantity": 25},
        True,
        pb.REASON_ENTITLED,
        ("int_value", 25),
    ),
    (
        {"subscription_id": "sub_acme_main", "feature_code": "seats", "privilege_code": "max", "quantity": 26},
        False,
        pb.REASON_QUANTITY_EXCEEDS_LIMIT,
        ("int_value", 25),
    ),
    (
        {"subscription_id": "sub_acme_main", "feature_code": "sso", "privilege_code": "provider", "value": "okta"},
        True,
        pb.REASON_ENTITLED,
        ("string_value", "okta"),
    ),
    (
        {"subscription_id": "sub_acme_main", "feature_code": "sso", "privilege_code": "provider", "value": "google"},
        False,
        pb.REASON_VALUE_MISMATCH,
        ("string_value", "okta"),
    ),
    (
        {"subscription_id": "sub_acme_main", "feature_code": "sso", "privilege_code": "domain", "value": "example.com"},
        True,
        pb.REASON_ENTITLED,
        ("string_value", "example.com"),
    ),
    (
        {"subscription_id": "sub_globex", "feature_code": "seats", "privilege_code": "root"},
        False,
        pb.REASON_PRIVILEGE_FALSE,
        ("bool_value", False),
    ),
    (
        {"subscription_id": "sub_acme_main", "feature_code": "seats", "privilege_code": "root"},
        False,
        pb.REASON_PRIVILEGE_NOT_FOUND,
        None,
    ),
    (
        {"subscription_id": "sub_acme_main", "feature_code": "analytics_api"},
        False,
        pb.REASON_FEATURE_NOT_ENTITLED,
        None,
    ),
    ({"subscription_id": "sub_nope", "feature_code": "sso"}, False, pb.REASON_SUBSCRIPTION_NOT_FOUND, None),
    ({"subscription_id": "sub_initech_next", "feature_code": "sso"}, False, pb.REASON_SUBSCRIPTION_NOT_ACTIVE, None),
    ({"subscription_id": "sub_umbrella_old", "feature_code": "sso"}, False, pb.REASON_SUBSCRIPTION_NOT_ACTIVE, None),
    (
        {"subscription_id": "sub_acme_main", "feature_code": "seats", "privilege_code": "max", "value": "3"},
        False,
        pb.REASON_REQUEST_TYPE_MISMATCH,
        ("int_value", 25),
    ),
    (
        {"subscription_id": "sub_acme_main", "feature_code": "audit.log", "privilege_code": "retention.days"},
        True,
        pb.REASON_ENTITLED,
        ("int_value", 30),
    ),
    ({"customer_id": "acme", "feature_code": "analytics_api"}, True, pb.REASON_ENTITLED, None),
    (
        {"customer_id": "acme", "feature_code": "seats", "privilege_code": "max", "quantity": 20},
        True,
        pb.REASON_ENTITLED,
        ("int_value", 25),
    ),
    ({"customer_id": "nobody", "feature_code": "sso"}, False, pb.REASON_CUSTOMER_NOT_FOUND, None),
    ({"customer_id": "initech", "feature_code": "sso"}, False, pb.REASON_NO_ACTIVE_SUBSCRIPTION, None),
]


def test_check_reasons_and_values(redis_sidecar: Sidecar) -> None:
    for fields, allowed, reason, value in CASES:
        answer = check(redis_sidecar, **fields)
        assert (answer.allowed, answer.reason) == (allowed, reason), fields
        if value is None:
            assert not answer.HasField("value"), fields
        else:
            assert (answer.value.WhichOneof("kind"), getattr(answer.value, value[0])) == value, fields
        if fields.get("subscription_id") not in ("sub_nope", None):
            assert answer.freshness.version >= 1, fields


def test_customer_answer_names_granting_subscription(redis_sidecar: Sidecar) -> None:
    answer = check(redis_sidecar, customer_id="acme", feature_code="analytics_api")
    assert answer.subscription_id == "sub_acme_eu"  # only the addition on sub_acme_eu grants it


def test_freshness_reports_redis_then_memory(redis_sidecar: Sidecar) -> None:
    first = check(redis_sidecar, subscription_id="sub_globex", feature_code="seats")
    assert first.freshness.source == pb.SOURCE_REDIS
    second = check(redis_sidecar, subscription_id="sub_globex", feature_code="seats")
    assert second.freshness.source == pb.SOURCE_MEMORY
    assert second.freshness.version == first.freshness.version
    assert second.freshness.synced_at.seconds > 0 and not second.freshness.stale


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"feature_code": "sso"}, "subscription_id"),
        ({"subscription_id": "a", "customer_id": "b", "feature_code": "sso"}, "subscription_id"),
        ({"subscription_id": "a"}, "feature_code"),
        ({"subscription_id": "x" * 256, "feature_code": "sso"}, "subscription_id"),
        ({"customer_id": "x" * 256, "feature_code": "sso"}, "customer_id"),
        ({"subscription_id": "a", "feature_code": "f" * 256}, "feature_code"),
        ({"subscription_id": "a", "feature_code": "seats", "privilege_code": "max", "quantity": -1}, "quantity"),
        ({"subscription_id": "a", "feature_code": "seats", "quantity": 1}, "privilege_code"),
        (
            {"subscription_id": "a", "feature_code": "seats", "consistency": pb.Consistency(min_version=-3)},
            "consistency.min_version",
        ),
    ],
)
def test_malformed_checks_are_invalid_argument_naming_the_field(
    redis_sidecar: Sidecar, fields: dict[str, object], field_name: str
) -> None:
    code, details = rpc_error(lambda: check(redis_sidecar, **fields))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field_name}: ")


def test_batch_keeps_order_and_isolates_a_bad_item(redis_sidecar: Sidecar) -> None:
    request = pb.CheckEntitlementsRequest(
        checks=[
            pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="sso"),
            pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code=""),
            pb.CheckEntitlementRequest(customer_id="acme", feature_code="seats", privilege_code="max", quantity=99),
            pb.CheckEntitlementRequest(subscription_id="sub_nope", feature_code="sso"),
        ]
    )
    results = stub(redis_sidecar).CheckEntitlements(request, timeout=5).results
    assert [r.WhichOneof("outcome") for r in results] == ["response", "error", "response", "response"]
    assert results[0].response.allowed
    assert results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert results[1].error.field == "checks[1].feature_code"
    assert results[2].response.reason == pb.REASON_QUANTITY_EXCEEDS_LIMIT
    assert results[3].response.reason == pb.REASON_SUBSCRIPTION_NOT_FOUND
    assert stub(redis_sidecar).CheckEntitlements(pb.CheckEntitlementsRequest(), timeout=5).results == []


def test_batch_over_the_limit_is_rejected(redis_sidecar: Sidecar) -> None:
    request = pb.CheckEntitlementsRequest(
        checks=[pb.CheckEntitlementRequest(subscription_id="s", feature_code="f")] * 1001
    )
    code, details = rpc_error(lambda: stub(redis_sidecar).CheckEntitlements(request, timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("checks: ")


def test_get_entitlements_for_subscription_and_customer(redis_sidecar: Sidecar) -> None:
    got = stub(redis_sidecar).GetEntitlements(pb.GetEntitlementsRequest(subscription_id="sub_acme_main"), timeout=5)
    ents = got.entitlements
    assert (ents.found, ents.status, ents.plan_code) == (True, "active", "pro")
    features = {f.code: f for f in ents.features}
    assert set(features) == {"seats", "sso", "audit.log"}
    seats = {p.code: p for p in features["seats"].privileges}
    assert seats["max"].overridden and seats["max"].value.int_value == 25 and seats["max"].plan_value.int_value == 10
    assert seats["max"].value_type == pb.VALUE_TYPE_INTEGER and seats["max"].name == "Maximum"
    provider = {p.code: p for p in features["sso"].privileges}["provider"]
    assert list(provider.select_options) == ["google", "okta", "azure_ad"]
    assert provider.value_type == pb.VALUE_TYPE_SELECT
    domain = {p.code: p for p in features["sso"].privileges}["domain"]
    assert not domain.overridden and domain.value.string_value == "example.com"

    customer = (
        stub(redis_sidecar).GetEntitlements(pb.GetEntitlementsRequest(customer_id="acme"), timeout=5).entitlements
    )
    assert {s.subscription_id for s in customer.subscriptions} == {"sub_acme_main", "sub_acme_eu"}
    merged = {f.code: f for f in customer.features}
    assert "analytics_api" in merged and merged["analytics_api"].privileges == []
    max_seats = {p.code: p for p in merged["seats"].privileges}["max"]
    assert (max_seats.value.int_value, max_seats.subscription_id) == (25, "sub_acme_main")

    missing = stub(redis_sidecar).GetEntitlements(pb.GetEntitlementsRequest(subscription_id="nope"), timeout=5)
    assert not missing.entitlements.found and list(missing.entitlements.features) == []
    code, details = rpc_error(lambda: stub(redis_sidecar).GetEntitlements(pb.GetEntitlementsRequest(), timeout=5))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "subscription_id")


def test_consistency_options(redis_sidecar: Sidecar, example_catalog: Path) -> None:
    base = {"subscription_id": "sub_acme_main", "feature_code": "seats", "privilege_code": "max"}
    warm = check(redis_sidecar, **base)
    version = warm.freshness.version
    # An edit the poller has not applied yet is still visible to a fully consistent read.
    edit(example_catalog, "seats: {max: 25}", "seats: {max: 60}")
    full = check(redis_sidecar, **base, consistency=pb.Consistency(fully_consistent=True))
    assert full.value.int_value == 60 and full.freshness.source == pb.SOURCE_SOURCE
    assert full.freshness.version > version
    at_least = check(redis_sidecar, **base, consistency=pb.Consistency(min_version=version + 1))
    assert at_least.value.int_value == 60 and at_least.freshness.version >= version + 1 and not at_least.freshness.stale
    future = check(redis_sidecar, **base, consistency=pb.Consistency(min_version=full.freshness.version + 10**9))
    assert future.freshness.stale
    latency = check(redis_sidecar, **base, consistency=pb.Consistency(minimize_latency=True))
    assert latency.value.int_value == 60


def test_watch_sends_current_state_then_changes(redis_sidecar: Sidecar, example_catalog: Path) -> None:
    request = pb.WatchEntitlementsRequest(
        subjects=[pb.Subject(subscription_id="sub_acme_main"), pb.Subject(customer_id="acme")]
    )
    stream = stub(redis_sidecar).WatchEntitlements(request, timeout=20)
    first, second = next(stream), next(stream)
    assert first.initial and second.initial
    assert first.entitlements.subject.subscription_id == "sub_acme_main"
    assert second.entitlements.subject.customer_id == "acme"
    edit(example_catalog, "seats: {max: 25}", "seats: {max: 70}")
    changes = [next(stream), next(stream)]
    assert not any(c.initial for c in changes)
    by_subject = {c.entitlements.subject.subscription_id or c.entitlements.subject.customer_id: c for c in changes}
    assert set(by_subject) == {"sub_acme_main", "acme"}
    for change in changes:
        seats = {f.code: f for f in change.entitlements.features}["seats"]
        assert {p.code: p for p in seats.privileges}["max"].value.int_value == 70
    assert by_subject["sub_acme_main"].entitlements.freshness.version > first.entitlements.freshness.version
    # removing the subscription from the catalog is a change too
    edit(example_catalog, "external_id: sub_acme_main", "external_id: sub_acme_renamed")
    removed = [next(stream), next(stream)]
    gone = {m.entitlements.subject.subscription_id: m for m in removed if m.entitlements.subject.subscription_id}
    assert gone["sub_acme_main"].entitlements.found is False
    stream.cancel()


def test_a_plan_change_reaches_the_watches_of_subscriptions_on_it_only(
    redis_sidecar: Sidecar, example_catalog: Path
) -> None:
    request = pb.WatchEntitlementsRequest(
        subjects=[pb.Subject(subscription_id="sub_globex"), pb.Subject(subscription_id="sub_acme_main")]
    )
    stream = stub(redis_sidecar).WatchEntitlements(request, timeout=20)
    assert [next(stream).initial, next(stream).initial] == [True, True]
    edit(example_catalog, "seats: {max: 5, max_admins: 1, root: false}", "seats: {max: 6, max_admins: 1, root: false}")
    starter = next(stream)  # one write of the starter plan: sub_globex is on it, sub_acme_main is not
    assert starter.entitlements.subject.subscription_id == "sub_globex" and not starter.initial
    seats = {f.code: f for f in starter.entitlements.features}["seats"]
    assert {p.code: p for p in seats.privileges}["max"].value.int_value == 6
    edit(example_catalog, "seats: {max: 10, max_admins: 5, root: true}", "seats: {max: 10, max_admins: 7, root: true}")
    pro = next(stream)
    assert pro.entitlements.subject.subscription_id == "sub_acme_main"
    seats = {f.code: f for f in pro.entitlements.features}["seats"]
    assert {p.code: p for p in seats.privileges}["max_admins"].value.int_value == 7
    stream.cancel()


def _watch_acme(**fields: Any) -> pb.WatchEntitlementsRequest:
    return pb.WatchEntitlementsRequest(subjects=[pb.Subject(subscription_id="sub_acme_main")], **fields)


def test_a_quiet_watch_sends_heartbeats_at_the_interval_asked(redis_sidecar: Sidecar, example_catalog: Path) -> None:
    request = _watch_acme(heartbeat_interval=duration_pb2.Duration(nanos=500_000_000))
    stream = stub(redis_sidecar).WatchEntitlements(request, timeout=20)
    assert next(stream).initial
    beats = [next(stream) for _ in range(2)]
    assert all(b.heartbeat and not b.HasField("entitlements") and not b.initial for b in beats)
    edit(example_catalog, "seats: {max: 25}", "seats: {max: 71}")
    change = next(stream)
    while change.heartbeat:  # a beat may have been on its way before the edit reached the sidecar
        change = next(stream)
    sent = time.monotonic()
    assert change.entitlements.found and not change.initial
    after = next(stream)
    # A change restarts the quiet interval: the next beat comes half a second after it, not sooner.
    assert after.heartbeat and time.monotonic() - sent >= 0.4
    stream.cancel()


def test_watch_validates_subjects(redis_sidecar: Sidecar) -> None:
    for request, field in [
        (pb.WatchEntitlementsRequest(), "subjects"),
        (pb.WatchEntitlementsRequest(subjects=[pb.Subject()]), "subjects[0].subscription_id"),
        (pb.WatchEntitlementsRequest(subjects=[pb.Subject(customer_id="a")] * 101), "subjects"),
        (_watch_acme(heartbeat_interval=duration_pb2.Duration(nanos=100_000_000)), "heartbeat_interval"),
        (_watch_acme(heartbeat_interval=duration_pb2.Duration(seconds=61)), "heartbeat_interval"),
        (_watch_acme(heartbeat_interval=duration_pb2.Duration(seconds=-1)), "heartbeat_interval"),
    ]:
        code, details = rpc_error(lambda: next(stub(redis_sidecar).WatchEntitlements(request, timeout=5)))  # noqa: B023
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith(f"{field}: ")


def test_concurrent_checks_from_threads(redis_sidecar: Sidecar) -> None:
    errors: list[BaseException] = []
    answered: list[int] = []

    def worker() -> None:
        try:
            for _ in range(50):
                answer = check(redis_sidecar, customer_id="acme", feature_code="seats", privilege_code="max")
                assert answer.value.int_value == 25
                answered.append(1)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not [t for t in threads if t.is_alive()], "a worker hung"  # join's timeout alone would pass it
    assert not errors and len(answered) == 8 * 50


def test_health_and_reflection(redis_sidecar: Sidecar) -> None:
    assert redis_sidecar.health() == 1  # SERVING
    assert redis_sidecar.health("entitlements.v1.EntitlementService") == 1
    reflection = reflection_pb2_grpc.ServerReflectionStub(redis_sidecar.channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for s in next(responses).list_services_response.service}
    assert {"entitlements.v1.EntitlementService", "grpc.health.v1.Health"} <= names


def test_catalog_edits_reach_checks_and_bad_edits_keep_state(redis_sidecar: Sidecar, example_catalog: Path) -> None:
    base = {"subscription_id": "sub_globex", "feature_code": "seats", "privilege_code": "max"}
    assert check(redis_sidecar, **base).value.int_value == 5
    edit(example_catalog, "seats: {max: 5, max_admins: 1, root: false}", "seats: {max: 6, max_admins: 1, root: false}")
    eventually(lambda: check(redis_sidecar, **base).value.int_value == 6, what="catalog edit applied")
    edit(example_catalog, "seats: {max: 6,", "seats: {max: six,")
    eventually(lambda: "catalog not reloaded" in redis_sidecar.log(), what="bad edit logged")
    assert check(redis_sidecar, **base).value.int_value == 6
    assert "expected an integer" in redis_sidecar.log()


def test_the_cases_above_cover_every_reason() -> None:
    # A healthy sidecar never answers REASON_FAILURE_POLICY: test_faults.py makes it happen. The usage
    # reasons need a metered catalog: test_usage.py's checks with a requested usage answer both.
    elsewhere = (
        pb.REASON_UNSPECIFIED,
        pb.REASON_FAILURE_POLICY,
        pb.REASON_USAGE_OVER_QUOTA,
        pb.REASON_USAGE_OVER_ALLOWANCE,
    )
    every = {v for v in pb.Reason.values() if v not in elsewhere}
    assert {reason for _, _, reason, _ in CASES} == every
