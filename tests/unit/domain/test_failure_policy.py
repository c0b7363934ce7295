"""The failure policy: what a check answers when it cannot be answered fresh."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from entitlements_sidecar.domain.check import Decision, Reason
from entitlements_sidecar.domain.errors import (
    DeadlineError,
    NotReadyError,
    SourceUnavailableError,
    StoreUnavailableError,
)
from entitlements_sidecar.domain.failure_policy import FailurePolicies, FailurePolicy, PolicyKind, PolicyReadService
from entitlements_sidecar.domain.ports import Origin
from entitlements_sidecar.domain.queries import CheckQuery, Subject, SubjectKind
from entitlements_sidecar.domain.service import CheckAnswer, Freshness

SSO = CheckQuery.build(Subject(SubjectKind.SUBSCRIPTION, "sub_1"), "sso")
SEATS = CheckQuery.build(Subject(SubjectKind.SUBSCRIPTION, "sub_1"), "seats")
FRESH = CheckAnswer(
    Decision(True, Reason.ENTITLED, "sub_1"), Freshness(3, datetime(2026, 1, 1, tzinfo=UTC), Origin.REDIS, False)
)


class Inner:
    """Stands in for ReadService: answers, or fails the way the store or the source does."""

    def __init__(self) -> None:
        self.failure: Exception | None = None

    async def check(self, query: CheckQuery) -> CheckAnswer:
        if self.failure is not None:
            raise self.failure
        return FRESH


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def service(default: str, features: str = "", lag: float | None = 0.0) -> tuple[PolicyReadService, Inner, Clock]:
    inner, clock = Inner(), Clock()
    policies = FailurePolicies.parse(default, features)
    return PolicyReadService(inner, policies, lambda: lag, 300.0, clock=clock), inner, clock  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "failure",
    [
        StoreUnavailableError("redis down"),
        SourceUnavailableError("lago down"),
        DeadlineError("no answer before the deadline"),
        NotReadyError("the map is being rebuilt"),
    ],
)
async def test_fail_closed_and_fail_open_per_feature(failure: Exception) -> None:
    checks, inner, _ = service("fail_closed", "sso=fail_open")
    inner.failure = failure
    denied, allowed = await checks.check(SEATS), await checks.check(SSO)
    assert (denied.decision.allowed, allowed.decision.allowed) == (False, True)
    for answer in (denied, allowed):
        assert answer.decision.reason is Reason.FAILURE_POLICY
        assert answer.freshness.origin is Origin.FALLBACK and answer.freshness.stale


async def test_last_known_good_within_its_age_then_closed() -> None:
    checks, inner, clock = service("last_known_good:60")
    assert await checks.check(SSO) == FRESH  # remembered
    inner.failure = StoreUnavailableError("redis down")
    clock.now += 59
    known = await checks.check(SSO)
    assert known.decision == FRESH.decision and known.freshness.origin is Origin.FALLBACK and known.freshness.stale
    clock.now += 2
    assert (await checks.check(SSO)).decision == Decision(False, Reason.FAILURE_POLICY)
    assert (await checks.check(SEATS)).decision.allowed is False  # never answered: nothing known


async def test_a_map_older_than_the_budget() -> None:
    lagging_open, _, _ = service("fail_open", lag=301.0)
    assert (await lagging_open.check(SEATS)).decision == Decision(True, Reason.FAILURE_POLICY)
    within, _, _ = service("last_known_good:600", lag=301.0)
    answer = await within.check(SEATS)
    assert answer.decision == FRESH.decision and answer.freshness.stale and answer.freshness.origin is Origin.FALLBACK
    beyond, _, _ = service("last_known_good:600", lag=601.0)
    assert (await beyond.check(SEATS)).decision == Decision(False, Reason.FAILURE_POLICY)
    current, _, _ = service("fail_closed", lag=299.0)
    assert await current.check(SEATS) == FRESH


@pytest.mark.parametrize(
    ("text", "problem"),
    [("fail_sometimes", "expected fail_closed"), ("fail_open:5", "only last_known_good"),
     ("last_known_good", "needs a maximum age"), ("last_known_good:-1", "must be positive")],
)  # fmt: skip
def test_bad_policies_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        FailurePolicy.parse(text)


def test_feature_codes_may_contain_dots_and_colons() -> None:
    policies = FailurePolicies.parse("fail_closed", "audit.log=fail_open, a:b=last_known_good:5")
    assert policies.for_feature("audit.log") == FailurePolicy(PolicyKind.FAIL_OPEN)
    assert policies.for_feature("a:b") == FailurePolicy(PolicyKind.LAST_KNOWN_GOOD, 5.0)
    assert policies.for_feature("other").kind is PolicyKind.FAIL_CLOSED
