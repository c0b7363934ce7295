"""Composition from shared parts answers exactly what resolution does, for any own rows, plan and catalog."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from entitlements_sidecar.domain.composition import Composer, PlanFeatures, composed_version
from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
    PrivilegeDefinition,
    SubscriptionDefinition,
    SubscriptionStatus,
    ValueType,
)
from entitlements_sidecar.domain.resolution import resolve_subscription
from tests.support.builders import FEATURES, PRO, STARTER, own

_FEATURES = ("seats", "sso", "api", "beta")
_PRIVILEGES = ("max", "root", "level")
_CATALOG = {
    code: FeatureDefinition(code, privileges={p: PrivilegeDefinition(p, ValueType.INTEGER) for p in _PRIVILEGES})
    for code in _FEATURES
}
values = st.dictionaries(
    st.sampled_from(_FEATURES),
    st.dictionaries(st.sampled_from(_PRIVILEGES), st.integers(0, 3), max_size=3),
    max_size=4,
)
removed_privileges = st.dictionaries(
    st.sampled_from(_FEATURES), st.frozensets(st.sampled_from(_PRIVILEGES), min_size=1), max_size=2
)
catalogs = st.frozensets(st.sampled_from(_FEATURES)).map(lambda keep: {c: f for c, f in _CATALOG.items() if c in keep})


@settings(max_examples=300, deadline=None)
@given(
    plan_values=values,
    own_values=values,
    removed=st.frozensets(st.sampled_from(_FEATURES)),
    removed_by_privilege=removed_privileges,
    features=catalogs,
)
def test_a_composed_answer_is_the_resolved_one(
    plan_values: dict[str, dict[str, int]],
    own_values: dict[str, dict[str, int]],
    removed: frozenset[str],
    removed_by_privilege: dict[str, frozenset[str]],
    features: dict[str, FeatureDefinition],
) -> None:
    plan = PlanDefinition("p", plan_values)
    mine = SubscriptionDefinition(
        "s", "c", "p", SubscriptionStatus.ACTIVE, None, own_values, removed, removed_by_privilege
    )
    composer = Composer()
    bare = SubscriptionDefinition("t", "c", "p", SubscriptionStatus.ACTIVE)
    composer.compose(bare, plan, 1, features, 1)  # the shared plan is built first, as in a warm store
    assert composer.compose(mine, plan, 1, features, 1) == resolve_subscription(mine, plan, features)


def test_answers_on_a_plan_share_it_until_the_plan_or_catalog_version_moves() -> None:
    composer = Composer()
    one = composer.compose(own("a"), PRO, 1, FEATURES, 1)
    two = composer.compose(own("b"), PRO, 1, FEATURES, 1)
    assert isinstance(one.features, PlanFeatures) and one.features is two.features
    assert one.plan_code is two.plan_code
    assert composer.compose(own("c", plan=STARTER), STARTER, 1, FEATURES, 1).features is not one.features
    assert composer.compose(own("a"), PRO, 2, FEATURES, 1).features is not one.features
    assert composer.compose(own("a"), PRO, 2, FEATURES, 2).features is not one.features
    assert composer.compose(own("x", plan=PlanDefinition("gone", {})), None, 0, FEATURES, 1).features == {}


def test_an_answer_version_is_its_newest_part() -> None:
    assert composed_version(3, 9, 4) == 9
    assert composed_version(10, 9, 4) == 10
