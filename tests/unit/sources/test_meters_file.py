"""Meters are validated like the catalog: every mistake names the file, the path and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from entitlements_sidecar.domain.errors import CatalogError
from entitlements_sidecar.domain.model import FeatureDefinition, PrivilegeDefinition, ValueType
from entitlements_sidecar.domain.usage import Aggregation, Meter, OnFailure
from entitlements_sidecar.sources.meters_file import load_meters, parse_meters

FEATURES = {
    "api": FeatureDefinition(
        "api",
        privileges={
            "calls_max": PrivilegeDefinition("calls_max", ValueType.INTEGER),
            "calls_included": PrivilegeDefinition("calls_included", ValueType.INTEGER),
            "tier": PrivilegeDefinition("tier", ValueType.STRING),
        },
    ),
    "llm": FeatureDefinition("llm", privileges={"tokens_max": PrivilegeDefinition("tokens_max", ValueType.INTEGER)}),
}
CALLS = {
    "metric": "api_calls",
    "feature": "api",
    "aggregation": "count",
    "quota": "calls_max",
    "allowance": "calls_included",
}
TOKENS = {"metric": "tokens", "feature": "llm", "aggregation": "sum", "property": "tokens", "quota": "tokens_max"}


def test_meters_are_read_by_metric_and_by_feature() -> None:
    meters = parse_meters([CALLS, TOKENS], "catalog.yaml", FEATURES)
    calls = Meter("api", "api_calls", Aggregation.COUNT, "calls_max", "calls_included")
    assert meters.by_metric["api_calls"] == meters.by_feature["api"] == calls
    assert meters.by_metric["tokens"].property == "tokens"
    assert meters.by_metric["tokens"].on_failure is OnFailure.FAIL_CLOSED  # the default: a quota is never passed
    opened = parse_meters([{**TOKENS, "on_failure": "fail_open"}], "catalog.yaml", FEATURES)
    assert opened.by_metric["tokens"].on_failure is OnFailure.FAIL_OPEN


@pytest.mark.parametrize(
    ("items", "where", "problem"),
    [
        (
            [{**CALLS, "aggregation": "max"}],
            "meters[0].aggregation",
            "'max' cannot be counted per event (count or sum)",
        ),
        ([{**CALLS, "aggregation": "unique_count_agg"}], "meters[0].aggregation", "cannot be counted per event"),
        ([{**CALLS, "aggregation": "avg"}], "meters[0].aggregation", "'avg' is not an aggregation"),
        ([{**CALLS, "metric": ""}], "meters[0].metric", "is required"),
        ([{**CALLS, "colour": "red"}], "meters[0]", "unknown key 'colour'"),
        ([CALLS, {**TOKENS, "metric": "api_calls"}], "meters[1].metric", "metered twice"),
        ([CALLS, {**TOKENS, "feature": "api", "quota": "calls_max"}], "meters[1].feature", "has a meter already"),
        ([{**TOKENS, "property": None}], "meters[0].property", "names the event property"),
        ([{**CALLS, "property": "x"}], "meters[0].property", "takes no property"),
        ([{**CALLS, "feature": "nope"}], "meters[0].feature", "unknown feature 'nope'"),
        ([{**CALLS, "quota": "seats"}], "meters[0].quota", "has no privilege 'seats'"),
        ([{**CALLS, "allowance": "tier"}], "meters[0].allowance", "is string, not integer"),
        ([{**CALLS, "allowance": "calls_max"}], "meters[0].allowance", "must be different privileges"),
        ({"api_calls": CALLS}, "meters", "expected a list"),
        ([{**CALLS, "on_failure": "last_known_good"}], "meters[0].on_failure", "must be fail_closed or fail_open"),
    ],
)
def test_a_mistake_names_where_and_what(items: object, where: str, problem: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_meters(items, "catalog.yaml", FEATURES)
    assert caught.value.path == where and problem in caught.value.problem, str(caught.value)


def test_without_known_features_only_the_shape_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "meters.yaml"
    path.write_text("meters:\n  - {metric: api_calls, feature: api, aggregation: count, quota: calls_max}\n")
    assert load_meters(path).by_metric["api_calls"].quota_privilege == "calls_max"  # Lago mode: features from Lago
    path.write_text("meters:\n  - {metric: m, feature: f, aggregation: latest}\n")
    with pytest.raises(CatalogError, match=r"meters\.yaml: meters\[0\]\.aggregation: 'latest' cannot be counted"):
        load_meters(path)
    path.write_text("metres: []\n")
    with pytest.raises(CatalogError, match="expected a mapping with one key, meters"):
        load_meters(path)


def test_a_catalog_declares_its_meters_and_they_are_checked_against_its_features() -> None:
    from entitlements_sidecar.sources.catalog_file import parse_catalog

    text = b"""
features:
  - code: api
    privileges: [{code: calls_max, value_type: integer}, {code: tier, value_type: string}]
meters:
  - {metric: api_calls, feature: api, aggregation: count, quota: calls_max}
"""
    assert parse_catalog(text, "catalog.yaml").meters.by_feature["api"].metric_code == "api_calls"
    with pytest.raises(CatalogError, match=r"catalog\.yaml: meters\[0\]\.quota: privilege 'tier' is string"):
        parse_catalog(text.replace(b"quota: calls_max", b"quota: tier"), "catalog.yaml")
