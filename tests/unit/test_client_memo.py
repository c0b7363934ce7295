"""The Python client's local copy: the memo of answers is bounded and never keeps an answer from an older
state, and answers are marked stale while the stream is silent."""

from __future__ import annotations

from entitlements_sidecar.client import Check
from entitlements_sidecar.client_local import LocalCache
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb


def state(max_seats: int) -> pb.EntitlementSet:
    privilege = pb.Privilege(code="max", value_type=pb.VALUE_TYPE_INTEGER, value=pb.Value(int_value=max_seats))
    return pb.EntitlementSet(
        subject=pb.Subject(subscription_id="s"),
        found=True,
        subscriptions=[pb.SubscriptionInfo(subscription_id="s", status="active")],
        features=[pb.Feature(code="seats", privileges=[privilege])],
    )


def test_the_memo_is_bounded() -> None:
    cache = LocalCache(max_answers=100)
    cache.update(state(10))
    for quantity in range(300):
        assert cache.lookup(Check("seats", subscription_id="s", privilege="max", quantity=quantity)) is not None
    assert 0 < len(cache) <= 100


def test_no_memo_when_asked_for_none() -> None:
    cache = LocalCache(max_answers=0)
    cache.update(state(10))
    assert cache.lookup(Check("seats", subscription_id="s")) is not None
    assert len(cache) == 0


def test_an_answer_computed_from_a_replaced_state_is_not_kept() -> None:
    cache = LocalCache()
    cache.update(state(10))
    check = Check("seats", subscription_id="s", privilege="max", quantity=20)
    stale = cache.lookup(check)
    assert stale is not None and not stale.allowed  # 20 > 10
    memo_the_caller_held = cache._answers
    cache.update(state(25))  # the Watch stream delivers a change while a caller was computing ...
    memo_the_caller_held[check] = stale  # ... which then stores its answer where it read from
    fresh = cache.lookup(check)
    assert fresh is not None and fresh.allowed  # 20 <= 25: the new state's answer, not the caller's


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_answers_are_marked_stale_once_the_stream_is_silent_and_fresh_when_it_speaks() -> None:
    clock = Clock()
    cache = LocalCache(stale_after=6.0, clock=clock)
    cache.update(state(10))
    check = Check("seats", subscription_id="s", privilege="max", quantity=5)
    clock.now += 6.0
    fresh = cache.lookup(check)
    assert fresh is not None and fresh.allowed and not fresh.stale  # within the bound: as the sidecar said
    clock.now += 0.1
    silent = cache.lookup(check)
    assert silent is not None and silent.allowed and silent.stale  # the same answer, no longer claimed fresh
    cache.heard()  # a heartbeat
    again = cache.lookup(check)
    assert again is not None and not again.stale
    clock.now += 7.0
    cache.update(state(3))  # a change counts as a word from the stream too
    changed = cache.lookup(check)
    assert changed is not None and not changed.allowed and not changed.stale


def test_a_state_the_sidecar_sent_as_stale_stays_stale_after_a_heartbeat() -> None:
    cache = LocalCache(clock=Clock())
    stale_state = state(10)
    stale_state.freshness.stale = True
    cache.update(stale_state)
    cache.heard()
    answer = cache.lookup(Check("seats", subscription_id="s"))
    assert answer is not None and answer.stale
