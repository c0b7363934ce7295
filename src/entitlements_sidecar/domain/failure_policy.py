"""What a check answers when it cannot be answered fresh: the failure policy, per feature.

It applies when the store or the source cannot be read (Redis down and the subject not in the
in-process cache; Lago down on a fully consistent read), when they would not answer before the
caller's deadline (reads are bounded by it, less a margin), when the map is not known to be
complete (a subject it lacks may exist), and when the map is older than the staleness budget (the
sync lag readiness reports). The answer says so: reason FAILURE_POLICY or the last known answer,
with freshness origin FALLBACK and stale set.

- fail_closed: deny.
- fail_open: allow.
- last_known_good:<seconds>: the last fresh answer to the same question, if it is at most that old
  (and, on a lagging map, the map's own answer while the lag is at most that old); else deny.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from entitlements_sidecar.domain.check import Decision, Reason
from entitlements_sidecar.domain.errors import (
    DeadlineError,
    NotReadyError,
    SourceRejectedError,
    SourceUnavailableError,
    StoreUnavailableError,
)
from entitlements_sidecar.domain.ports import Deadline, Origin
from entitlements_sidecar.domain.queries import CACHED, CheckQuery, Consistency, Subject
from entitlements_sidecar.domain.service import CheckAnswer, EntitlementView, Freshness, ReadService

_EPOCH = datetime.fromtimestamp(0, UTC)
_T = TypeVar("_T")
# What makes a check unanswerable fresh, as opposed to a bad request or a bug.
_CANNOT_BE_FRESH = (StoreUnavailableError, SourceUnavailableError, SourceRejectedError, DeadlineError, NotReadyError)


class PolicyKind(enum.Enum):
    FAIL_CLOSED = "fail_closed"
    FAIL_OPEN = "fail_open"
    LAST_KNOWN_GOOD = "last_known_good"


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    kind: PolicyKind
    max_age_seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FailurePolicy:
        name, _, age = text.strip().partition(":")
        try:
            kind = PolicyKind(name)
        except ValueError:
            raise ValueError(f"{text!r}: expected fail_closed, fail_open or last_known_good:<seconds>") from None
        if kind is not PolicyKind.LAST_KNOWN_GOOD:
            if age:
                raise ValueError(f"{text!r}: only last_known_good takes a maximum age")
            return cls(kind)
        try:
            seconds = float(age)
        except ValueError:
            raise ValueError(
                f"{text!r}: last_known_good needs a maximum age in seconds, e.g. last_known_good:600"
            ) from None
        if seconds <= 0:
            raise ValueError(f"{text!r}: the maximum age must be positive")
        return cls(kind, seconds)


@dataclass(frozen=True, slots=True)
class FailurePolicies:
    default: FailurePolicy
    by_feature: Mapping[str, FailurePolicy] = field(default_factory=dict)

    @classmethod
    def parse(cls, default: str, by_feature: str) -> FailurePolicies:
        """`by_feature`: comma-separated `feature=policy` (a feature code may contain anything but `,` and `=`)."""
        features: dict[str, FailurePolicy] = {}
        for item in filter(None, (part.strip() for part in by_feature.split(","))):
            code, sep, policy = item.rpartition("=")
            if not sep or not code:
                raise ValueError(f"{item!r}: expected feature=policy")
            features[code] = FailurePolicy.parse(policy)
        return cls(FailurePolicy.parse(default), features)

    def for_feature(self, code: str) -> FailurePolicy:
        return self.by_feature.get(code, self.default)


@dataclass(frozen=True, slots=True)
class _Known:
    answer: CheckAnswer
    at: float


class _Unbounded:
    async def within(self, work: Awaitable[_T]) -> _T:
        return await work


class PolicyReadService:
    """Wraps ReadService's checks with the failure policy, and bounds every read by the caller's deadline."""

    def __init__(
        self,
        inner: ReadService,
        policies: FailurePolicies,
        sync_lag: Callable[[], float | None],
        budget_seconds: float,
        remembered: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        deadline: Deadline | None = None,
    ) -> None:
        self.inner = inner
        self._deadline = deadline or _Unbounded()
        self._policies = policies
        self._sync_lag = sync_lag
        self._budget = budget_seconds
        self._max_remembered = remembered
        self._clock = clock
        self._known: OrderedDict[CheckQuery, _Known] = OrderedDict()

    async def get(self, subject: Subject, consistency: Consistency = CACHED) -> EntitlementView:
        # A full view has no single answer to fall back to: past the deadline, the caller gets DeadlineError.
        view = await self._deadline.within(self.inner.get(subject, consistency))
        lag = self._sync_lag()
        if lag is not None and lag > self._budget and not view.freshness.stale:
            return replace(view, freshness=replace(view.freshness, stale=True))  # the map may be behind
        return view

    async def check(self, query: CheckQuery) -> CheckAnswer:
        policy = self._policies.for_feature(query.feature_code)
        try:
            answer = await self._deadline.within(self.inner.check(query))
        except _CANNOT_BE_FRESH:
            return self._fallback(query, policy)
        lag = self._sync_lag()
        if lag is not None and lag > self._budget:
            if policy.kind is PolicyKind.LAST_KNOWN_GOOD and lag <= policy.max_age_seconds:
                return _as_fallback(answer)  # the map's answer, said to be stale
            return self._fallback(query, policy, allow_known=False)
        if not answer.freshness.stale:
            self._remember(query, answer)
        return answer

    def _fallback(self, query: CheckQuery, policy: FailurePolicy, allow_known: bool = True) -> CheckAnswer:
        if policy.kind is PolicyKind.LAST_KNOWN_GOOD and allow_known:
            known = self._known.get(query)
            if known is not None and self._clock() - known.at <= policy.max_age_seconds:
                return _as_fallback(known.answer)
        allowed = policy.kind is PolicyKind.FAIL_OPEN
        return CheckAnswer(Decision(allowed, Reason.FAILURE_POLICY), Freshness(0, _EPOCH, Origin.FALLBACK, True))

    def _remember(self, query: CheckQuery, answer: CheckAnswer) -> None:
        self._known[query] = _Known(answer, self._clock())
        self._known.move_to_end(query)
        while len(self._known) > self._max_remembered:
            self._known.popitem(last=False)


def _as_fallback(answer: CheckAnswer) -> CheckAnswer:
    return replace(answer, freshness=replace(answer.freshness, origin=Origin.FALLBACK, stale=True))
