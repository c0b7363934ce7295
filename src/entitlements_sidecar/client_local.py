"""The Python client's local copy of watched subjects: the sidecar's check rules applied in-process
(held to the sidecar's answers by the conformance vectors), a memo of answers, and the stream's silence
(docs/adr/0014)."""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import replace

from entitlements_sidecar.client_types import Check, CheckResult, PrivilegeValue, value_of
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb

HEARTBEAT_SECONDS = 2.0  # asked of the sidecar on every Watch
SILENT_BEATS = 3  # intervals with nothing heard before local answers are marked stale
_MAX_ID_LENGTH = 255  # the longest id, code or value the sidecar takes (Lago caps codes at 255)


def well_formed(check: Check) -> bool:
    """Whether the sidecar would take the check rather than answer INVALID_ARGUMENT (its rules are
    domain/queries.py and domain/ids.py, which a client does not import; the conformance vectors hold the
    two to the same answers)."""
    if bool(check.subscription_id) == bool(check.customer_id):
        return False
    if check.subscription_id and (not _valid_id(check.subscription_id) or "/" in check.subscription_id):
        return False
    if check.customer_id and not _valid_id(check.customer_id):
        return False
    if not _valid_id(check.feature) or (check.privilege and not _valid_id(check.privilege)):
        return False
    if check.quantity is not None and (check.value is not None or check.quantity < 0):
        return False
    if check.value is not None and len(check.value) > _MAX_ID_LENGTH:
        return False
    return (check.quantity is None and check.value is None) or bool(check.privilege)


def _valid_id(value: str) -> bool:
    return (
        0 < len(value) <= _MAX_ID_LENGTH
        and value == value.strip()
        and value not in (".", "..")
        and not any(unicodedata.category(char) == "Cc" for char in value)
    )


def decide_locally(state: pb.EntitlementSet, check: Check) -> CheckResult:
    """The sidecar's check rules applied to a watched subject's entitlements."""
    version = state.freshness.version

    def answer(allowed: bool, reason: str, value: PrivilegeValue = None, sub: str = "") -> CheckResult:
        return CheckResult(allowed, reason, value, sub, version, "local", state.freshness.stale)

    customer = bool(check.customer_id)
    own = "" if customer else check.subscription_id  # a subscription subject is named in every answer
    if not state.found:
        return answer(False, "customer_not_found" if customer else "subscription_not_found")
    if not any(s.status == "active" for s in state.subscriptions):
        return answer(False, "no_active_subscription" if customer else "subscription_not_active", sub=own)
    feature = next((f for f in state.features if f.code == check.feature), None)
    if feature is None:
        return answer(False, "feature_not_entitled", sub=own)
    if not check.privilege:
        return answer(True, "entitled", sub=feature.subscription_id)
    privilege = next((p for p in feature.privileges if p.code == check.privilege), None)
    if privilege is None:
        return answer(False, "privilege_not_found", sub=feature.subscription_id)
    value, sub = value_of(privilege.value), privilege.subscription_id
    if privilege.value_type == pb.VALUE_TYPE_INTEGER:
        if check.value is not None:
            return answer(False, "request_type_mismatch", value, sub)
        over = check.quantity is not None and isinstance(value, int) and check.quantity > value
        return answer(not over, "quantity_exceeds_limit" if over else "entitled", value, sub)
    if privilege.value_type == pb.VALUE_TYPE_BOOLEAN:
        if check.quantity is not None or check.value is not None:
            return answer(False, "request_type_mismatch", value, sub)
        return answer(value is True, "entitled" if value is True else "privilege_false", value, sub)
    if check.quantity is not None:
        return answer(False, "request_type_mismatch", value, sub)
    if check.value is not None and check.value != value:
        return answer(False, "value_mismatch", value, sub)
    return answer(True, "entitled", value, sub)


class LocalCache:
    """Watched subjects' entitlements and memoized answers; shared by the watcher and callers.

    The memo holds at most `max_answers` answers (then it starts over: refilling costs one local
    evaluation per question). Callers read without the lock: every update replaces the memo, and an
    answer computed from an older state goes into the memo that update replaced, never the new one.
    Answers say stale once the stream has said nothing (no state, no heartbeat) for `stale_after` s."""

    def __init__(
        self,
        max_answers: int = 10_000,
        stale_after: float = HEARTBEAT_SECONDS * SILENT_BEATS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._states: dict[tuple[str, str], pb.EntitlementSet] = {}
        self._answers: dict[Check, CheckResult] = {}
        self._max_answers = max_answers
        self._lock = threading.Lock()
        self._stale_after = stale_after
        self._clock = clock
        self._heard = clock()  # when the stream last said anything (a state or a heartbeat)

    def lookup(self, check: Check) -> CheckResult | None:
        if check.requested_usage is not None:
            return None  # usage is live: only the sidecar can answer
        answers = self._answers  # before the state: see the class comment
        answer = answers.get(check)
        if answer is None:
            state = self._states.get((check.subscription_id, check.customer_id))
            if state is None or not well_formed(check):
                return None  # a malformed check goes to the sidecar, whose INVALID_ARGUMENT names the field
            answer = decide_locally(state, check)
            if self._max_answers > 0:
                if len(answers) >= self._max_answers:
                    answers.clear()
                answers[check] = answer
        if self._clock() - self._heard > self._stale_after and not answer.stale:
            return replace(answer, stale=True)  # the stream went silent: the sidecar may have missed changes
        return answer

    def update(self, state: pb.EntitlementSet) -> None:
        with self._lock:
            self._states[(state.subject.subscription_id, state.subject.customer_id)] = state
            self._answers = {}
            self._heard = self._clock()

    def heard(self) -> None:
        """A heartbeat: the stream is alive, and nothing changed."""
        self._heard = self._clock()

    def clear(self) -> None:
        with self._lock:
            self._states = {}
            self._answers = {}

    def __len__(self) -> int:
        return len(self._answers)
