from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from entitlements_sidecar.domain.errors import CatalogError
from entitlements_sidecar.domain.model import SubscriptionStatus, ValueType
from entitlements_sidecar.sources.catalog_file import load_catalog, parse_catalog
from tests.support.processes import REPO

BASE = """
features:
  - code: seats
    privileges:
      - {code: max, value_type: integer}
      - {code: root, value_type: boolean}
      - {code: tier}
      - {code: region, value_type: select, config: {select_options: [eu, us]}}
plans:
  - code: pro
    entitlements:
      seats: {max: 10, root: "true", tier: gold, region: eu}
"""


def one_sub(fields: str) -> str:
    return "subscriptions:\n  - {external_id: s, external_customer_id: c, plan_code: pro, " + fields + "}\n"


def parse(extra: str = "", base: str = BASE) -> object:
    return parse_catalog((textwrap.dedent(base) + textwrap.dedent(extra)).encode(), "cat.yaml")


def error_of(extra: str = "", base: str = BASE) -> CatalogError:
    with pytest.raises(CatalogError) as caught:
        parse(extra, base)
    return caught.value


def test_example_catalog_loads_and_shows_every_shape() -> None:
    catalog = load_catalog(REPO / "examples" / "catalog.yaml")
    types = {p.value_type for f in catalog.features.values() for p in f.privileges.values()}
    assert types == set(ValueType)
    resolved = catalog.resolve()
    main = resolved["sub_acme_main"]
    assert main.features["seats"].privileges["max"].overridden
    assert "analytics_api" not in main.features  # removal
    assert "root" not in main.features["seats"].privileges  # privilege removal
    assert "analytics_api" in resolved["sub_acme_eu"].features  # addition
    acme = [s for s in resolved.values() if s.external_customer_id == "acme"]
    assert len(acme) == 2
    assert resolved["sub_initech_next"].status is SubscriptionStatus.PENDING


def test_values_are_cast_per_lago_rules() -> None:
    catalog = parse(
        """
        subscriptions:
          - {external_id: s1, external_customer_id: c, plan_code: pro, overrides: {seats: {max: "25", root: false}}}
        """
    )
    sub = catalog.resolve()["s1"]  # type: ignore[attr-defined]
    privileges = sub.features["seats"].privileges
    assert privileges["max"].value == 25
    assert privileges["root"].value is False
    assert privileges["tier"].value_type is ValueType.STRING  # Lago's default value_type
    assert sub.status is SubscriptionStatus.ACTIVE


@pytest.mark.parametrize(
    ("extra", "path", "problem"),
    [
        (
            "subscriptions:\n  - {external_id: s, external_customer_id: c, plan_code: nope}\n",
            "subscriptions[0].plan_code",
            "unknown plan",
        ),
        (
            one_sub("overrides: {seats: {max: ten}}"),
            'subscriptions[0].overrides["seats"]["max"]',
            "expected an integer",
        ),
        (
            one_sub("overrides: {seats: {max: '010'}}"),
            'subscriptions[0].overrides["seats"]["max"]',
            "expected an integer",
        ),
        (
            one_sub("overrides: {seats: {max: 1.5}}"),
            'subscriptions[0].overrides["seats"]["max"]',
            "expected an integer",
        ),
        (
            one_sub("overrides: {seats: {region: mars}}"),
            'subscriptions[0].overrides["seats"]["region"]',
            "select options",
        ),
        (
            one_sub("overrides: {seats: {tier: 3}}"),
            'subscriptions[0].overrides["seats"]["tier"]',
            "expected a string",
        ),
        (
            one_sub("overrides: {seats: {root: yes please}}"),
            'subscriptions[0].overrides["seats"]["root"]',
            "expected true or false",
        ),
        (
            one_sub("overrides: {seats: {nope: 1}}"),
            'subscriptions[0].overrides["seats"]["nope"]',
            "no privilege",
        ),
        (
            one_sub("additions: {seats: {max: 1}}"),
            'subscriptions[0].additions["seats"]',
            "already on plan",
        ),
        (
            one_sub("additions: {ghost: {}}"),
            'subscriptions[0].additions["ghost"]',
            "unknown feature",
        ),
        (
            one_sub("status: paused"),
            "subscriptions[0].status",
            "must be one of",
        ),
        (
            one_sub("started_at: yesterday"),
            "subscriptions[0].started_at",
            "ISO-8601",
        ),
        ("subscriptions:\n  - {external_id: s, plan_code: pro}\n", "subscriptions[0].external_customer_id", "required"),
        (
            one_sub("overides: {}"),
            "subscriptions[0]",
            "unknown key 'overides'",
        ),
        (
            "subscriptions:\n  - {external_id: s, external_customer_id: c, plan_code: pro}\n"
            "  - {external_id: s, external_customer_id: d, plan_code: pro}\n",
            "subscriptions[1].external_id",
            "duplicate",
        ),
        (
            "subscriptions:\n  - external_id: s\n    external_customer_id: c\n    plan_code: pro\n"
            "    overrides: {seats: {max: 3}}\n    removals: {privileges: {seats: [max]}}\n",
            'subscriptions[0].removals.privileges["seats"]',
            "both overridden and removed",
        ),
        (
            one_sub("removals: {features: [x]}"),
            "subscriptions[0].removals.features[0]",
            "not on plan",
        ),
        (one_sub("billing_time: weekly"), "subscriptions[0].billing_time", "calendar or anniversary"),
    ],
)
def test_errors_name_file_path_and_problem(extra: str, path: str, problem: str) -> None:
    error = error_of(extra)
    assert error.file == "cat.yaml"
    assert error.path == path
    assert problem in error.problem
    assert str(error).startswith(f"cat.yaml: {path}: ")


@pytest.mark.parametrize(
    ("base", "path", "problem"),
    [
        (
            "features:\n  - {code: f, privileges: [{code: p, value_type: float}]}\n",
            "features[0].privileges[0].value_type",
            "must be one of",
        ),
        (
            "features:\n  - {code: f, privileges: [{code: p, value_type: select}]}\n",
            "features[0].privileges[0].config.select_options",
            "non-empty list",
        ),
        (
            "features:\n  - {code: f, privileges: [{code: p, value_type: integer, config: {select_options: [a]}}]}\n",
            "features[0].privileges[0].config",
            "must be empty",
        ),
        ("features:\n  - {code: f}\n  - {code: f}\n", "features[1].code", "duplicate"),
        (
            "features:\n  - {code: f, privileges: [{code: p}, {code: p}]}\n",
            "features[0].privileges[1].code",
            "duplicate",
        ),
        ("features:\n  - {code: '" + "x" * 256 + "'}\n", "features[0].code", "longer than 255"),
        ("plans:\n  - {code: p, entitlements: {ghost: {}}}\n", 'plans[0].entitlements["ghost"]', "unknown feature"),
        ("features: {}\n", "features", "expected a list"),
        ("- 1\n", "(top level)", "expected a mapping"),
    ],
)
def test_definition_errors(base: str, path: str, problem: str) -> None:
    error = error_of(base=base)
    assert (error.path, problem in error.problem) == (path, True), str(error)


def test_yaml_syntax_error_names_line() -> None:
    error = error_of(base="features: [\n  {code: a\n")
    assert "invalid YAML at line" in str(error)


def test_json_catalog(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        '{"features": [{"code": "f"}], "plans": [{"code": "p", "entitlements": {"f": {}}}],'
        ' "subscriptions": [{"external_id": "s", "external_customer_id": "c", "plan_code": "p"}]}'
    )
    assert "f" in load_catalog(path).resolve()["s"].features
    path.write_text("{not json")
    with pytest.raises(CatalogError, match="invalid JSON"):
        load_catalog(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path / "absent.yaml")
    assert "absent.yaml" in str(caught.value) and "cannot read" in str(caught.value)
