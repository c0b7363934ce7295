"""Meters as configuration: a `meters:` list in the catalog file (embedded mode) or in a meters file (Lago
mode), validated like the catalog. Every error names the file, the path and the problem, for example
`meters.yaml: meters[1].aggregation: 'max' cannot be counted per event (count or sum)`.

    meters:
      - metric: api_calls          # the Lago billable metric's code
        feature: analytics_api     # the feature it meters
        aggregation: count         # count | sum
        quota: calls_max           # integer privilege: the hard limit (optional)
        allowance: calls_included  # integer privilege: included units, beyond them billable (optional)
        on_failure: fail_closed    # Redis unreachable: fail_closed (deny) or fail_open (count here, add later)
      - {metric: tokens, feature: llm, aggregation: sum, property: tokens, quota: tokens_max}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from entitlements_sidecar.domain.errors import CatalogError
from entitlements_sidecar.domain.model import FeatureDefinition, ValueType
from entitlements_sidecar.domain.usage import Aggregation, Meter, Meters, OnFailure

_KEYS = {"metric", "feature", "aggregation", "quota", "allowance", "property", "on_failure"}
_MAX_CODE = 255
# Lago's other aggregations are not additive per event: the sidecar could not count them itself.
_NOT_ADDITIVE = {"max", "unique_count", "latest", "weighted_sum"}


def load_meters(path: Path, features: Mapping[str, FeatureDefinition] | None = None) -> Meters:
    try:
        document = yaml.safe_load(path.read_bytes())
    except OSError as exc:
        raise CatalogError(str(path), "", f"cannot read file: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(str(path), "", f"invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(document, dict) or set(document) - {"meters"}:
        raise CatalogError(str(path), "(top level)", "expected a mapping with one key, meters")
    return parse_meters(document.get("meters", []), str(path), features)


def parse_meters(items: Any, file: str, features: Mapping[str, FeatureDefinition] | None) -> Meters:
    """`features`: when known (a catalog), each meter's feature and privileges must exist in it, the
    privileges typed integer. In Lago mode features come from Lago and are checked when used."""
    if not isinstance(items, list):
        raise CatalogError(file, "meters", f"expected a list, got {type(items).__name__}")
    by_metric: dict[str, Meter] = {}
    by_feature: dict[str, Meter] = {}
    for i, item in enumerate(items):
        meter = _meter(item, f"meters[{i}]", file, features)
        if meter.metric_code in by_metric:
            raise CatalogError(file, f"meters[{i}].metric", f"metric {meter.metric_code!r} is metered twice")
        if meter.feature_code in by_feature:
            raise CatalogError(file, f"meters[{i}].feature", f"feature {meter.feature_code!r} has a meter already")
        by_metric[meter.metric_code] = by_feature[meter.feature_code] = meter
    return Meters(by_metric, by_feature)


def _meter(item: Any, path: str, file: str, features: Mapping[str, FeatureDefinition] | None) -> Meter:
    if not isinstance(item, dict):
        raise CatalogError(file, path, f"expected a mapping, got {type(item).__name__}")
    unknown = sorted(str(k) for k in item if k not in _KEYS)
    if unknown:
        raise CatalogError(file, path, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_KEYS))})")
    metric = _code(item.get("metric"), f"{path}.metric", file)
    feature = _code(item.get("feature"), f"{path}.feature", file)
    raw_aggregation = item.get("aggregation")
    try:
        aggregation = Aggregation(raw_aggregation if isinstance(raw_aggregation, str) else "")
    except ValueError:
        known = str(raw_aggregation).removesuffix("_agg")
        why = "cannot be counted per event" if known in _NOT_ADDITIVE else "is not an aggregation"
        raise CatalogError(file, f"{path}.aggregation", f"{raw_aggregation!r} {why} (count or sum)") from None
    quota = _optional_code(item.get("quota"), f"{path}.quota", file)
    allowance = _optional_code(item.get("allowance"), f"{path}.allowance", file)
    prop = _optional_code(item.get("property"), f"{path}.property", file)
    if aggregation is Aggregation.SUM and prop is None:
        raise CatalogError(file, f"{path}.property", "a sum meter names the event property it adds up")
    if aggregation is Aggregation.COUNT and prop is not None:
        raise CatalogError(file, f"{path}.property", "a count meter counts events: it takes no property")
    if quota is not None and quota == allowance:
        raise CatalogError(file, f"{path}.allowance", "the allowance and the quota must be different privileges")
    if features is not None:
        definition = features.get(feature)
        if definition is None:
            raise CatalogError(file, f"{path}.feature", f"unknown feature {feature!r}")
        for name, code in (("quota", quota), ("allowance", allowance)):
            if code is None:
                continue
            privilege = definition.privileges.get(code)
            if privilege is None:
                raise CatalogError(file, f"{path}.{name}", f"feature {feature!r} has no privilege {code!r}")
            if privilege.value_type is not ValueType.INTEGER:
                raise CatalogError(file, f"{path}.{name}", f"privilege {code!r} is {privilege.value_type}, not integer")
    on_failure = item.get("on_failure", OnFailure.FAIL_CLOSED.value)
    if on_failure not in {policy.value for policy in OnFailure}:
        raise CatalogError(file, f"{path}.on_failure", f"must be fail_closed or fail_open, got {on_failure!r}")
    return Meter(feature, metric, aggregation, quota, allowance, prop, OnFailure(on_failure))


def _code(item: Any, path: str, file: str) -> str:
    if not isinstance(item, str) or not item.strip():
        raise CatalogError(file, path, "is required and must be a non-empty string")
    if len(item) > _MAX_CODE:
        raise CatalogError(file, path, f"longer than {_MAX_CODE} characters")
    return item.strip()


def _optional_code(item: Any, path: str, file: str) -> str | None:
    return None if item is None else _code(item, path, file)
