"""Property-based tests (hypothesis): the inputs strangers control (webhook bodies, catalog files,
gRPC requests, flag keys, raw batch bytes) either parse or fail with our own error, never another
exception, and what parses round-trips."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entitlements_sidecar.domain.errors import CatalogError, FlagError, InvalidArgumentError
from entitlements_sidecar.domain.events import Target, split_usage_key
from entitlements_sidecar.domain.flags import FlagKey, parse_flag_key
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.sources.catalog_file import load_catalog
from entitlements_sidecar.sources.lago.webhooks import parse
from entitlements_sidecar.transport.grpc import mapping
from entitlements_sidecar.transport.grpc.answer_cache import _split

EXAMPLES = 300
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
webhook_like = st.fixed_dictionaries(
    {},
    optional={
        "webhook_type": st.sampled_from(
            ["subscription.updated", "plan.updated", "feature.deleted", "invoice.created", "alert.triggered"]
        )
        | st.text(max_size=10),
        "object_type": st.sampled_from(["subscription", "plan", "feature", "triggered_alert"]) | st.text(max_size=10),
        "triggered_alert": st.dictionaries(
            st.sampled_from(["external_subscription_id", "billable_metric_code", "current_value"]),
            json_values,
            max_size=3,
        ),
        "subscription": st.dictionaries(st.sampled_from(["external_id", "code"]), json_values, max_size=2),
        "plan": st.dictionaries(st.sampled_from(["code"]), json_values, max_size=1),
        "feature": json_values,
    },
)


@settings(max_examples=EXAMPLES)
@given(st.binary(max_size=200) | webhook_like.map(orjson.dumps) | json_values.map(orjson.dumps))
def test_webhook_bodies_parse_or_raise_invalid_argument(body: bytes) -> None:
    try:
        webhook_type, event = parse(body)
    except InvalidArgumentError:
        return
    assert isinstance(webhook_type, str)
    if event is not None:
        parts = split_usage_key(event.key) if event.target is Target.USAGE else (event.key,)
        assert all(0 < len(part) <= 255 for part in parts)


catalog_like = st.fixed_dictionaries(
    {},
    optional={
        "features": st.lists(
            st.fixed_dictionaries(
                {"code": st.text(min_size=0, max_size=6) | json_values},
                optional={"privileges": st.lists(st.dictionaries(st.sampled_from(
                    ["code", "value_type", "name", "config"]), json_values | st.sampled_from(
                    ["integer", "boolean", "string", "select"]), max_size=4), max_size=3)},
            ),
            max_size=3,
        ),
        "plans": st.lists(st.dictionaries(st.sampled_from(["code", "entitlements", "name"]), json_values), max_size=3),
        "subscriptions": st.lists(
            st.dictionaries(
                st.sampled_from(["external_id", "external_customer_id", "plan_code", "status", "overrides",
                                 "additions", "removals", "started_at"]),
                json_values,
            ),
            max_size=3,
        ),
        "unexpected": json_values,
    },
)  # fmt: skip


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(document=catalog_like | json_values, as_text=st.booleans(), raw=st.binary(max_size=100))
def test_catalog_files_load_or_raise_catalog_error(tmp_path: Path, document: Any, as_text: bool, raw: bytes) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_bytes(yaml.safe_dump(document).encode() if as_text else raw)
    error: CatalogError | None = None
    try:
        load_catalog(path).resolve()
    except CatalogError as exc:
        error = exc
    assert error is None or str(path) in str(error)  # an error names the file


@settings(max_examples=EXAMPLES)
@given(
    subscription_id=st.text(max_size=300),
    customer_id=st.text(max_size=300),
    feature_code=st.text(max_size=300),
    privilege_code=st.text(max_size=300),
    quantity=st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    value=st.none() | st.text(max_size=50),
    min_version=st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_check_requests_validate_or_name_the_field(**fields: Any) -> None:
    request = pb.CheckEntitlementRequest(
        subscription_id=fields["subscription_id"],
        customer_id=fields["customer_id"],
        feature_code=fields["feature_code"],
        privilege_code=fields["privilege_code"],
    )
    if fields["quantity"] is not None:
        request.quantity = fields["quantity"]
    if fields["value"] is not None:
        request.value = fields["value"]
    if fields["min_version"] is not None:
        request.consistency.min_version = fields["min_version"]
    error: InvalidArgumentError | None = None
    try:
        mapping.check_query_from_proto(request)
    except InvalidArgumentError as exc:
        error = exc
    assert error is None or (bool(error.field) and str(error).startswith(error.field))  # it names the field


@settings(max_examples=EXAMPLES)
@given(st.text(max_size=30))
def test_flag_keys_parse_or_raise_flag_error(key: str) -> None:
    with contextlib.suppress(FlagError):
        parse_flag_key(key)


@settings(max_examples=EXAMPLES)
@given(feature=st.text(min_size=1, max_size=20), privilege=st.none() | st.text(min_size=1, max_size=20))
def test_any_codes_round_trip_through_a_flag_key(feature: str, privilege: str | None) -> None:
    key = FlagKey(feature, privilege)
    assert parse_flag_key(str(key)) == key


@settings(max_examples=EXAMPLES)
@given(st.binary(max_size=300))
def test_batch_splitting_never_crashes_on_arbitrary_bytes(raw: bytes) -> None:
    items = _split(raw)
    assert items is None or all(isinstance(item, bytes) for item in items)


@settings(max_examples=EXAMPLES)
@given(st.lists(st.builds(pb.CheckEntitlementRequest, subscription_id=st.text(max_size=200),
                          feature_code=st.text(max_size=200)), max_size=20))  # fmt: skip
def test_batch_splitting_finds_every_item_of_a_real_batch(checks: list[pb.CheckEntitlementRequest]) -> None:
    raw = pb.CheckEntitlementsRequest(checks=checks).SerializeToString()
    assert _split(raw) == [check.SerializeToString() for check in checks]
