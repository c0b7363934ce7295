"""The Python client's memo of local answers is bounded, and never keeps an answer from an older state."""

from __future__ import annotations

from entitlements_sidecar.client import Check, _LocalCache
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
    cache = _LocalCache(max_answers=100)
    cache.update(state(10))
    for quantity in range(300):
        assert cache.lookup(Check("seats", subscription_id="s", privilege="max", quantity=quantity)) is not None
    assert 0 < len(cache) <= 100


def test_no_memo_when_asked_for_none() -> None:
    cache = _LocalCache(max_answers=0)
    cache.update(state(10))
    assert cache.lookup(Check("seats", subscription_id="s")) is not None
    assert len(cache) == 0


def test_an_answer_computed_from_a_replaced_state_is_not_kept() -> None:
    cache = _LocalCache()
    cache.update(state(10))
    check = Check("seats", subscription_id="s", privilege="max", quantity=20)
    stale = cache.lookup(check)
    assert stale is not None and not stale.allowed  # 20 > 10
    memo_the_caller_held = cache._answers
    cache.update(state(25))  # the Watch stream delivers a change while a caller was computing ...
    memo_the_caller_held[check] = stale  # ... which then stores its answer where it read from
    fresh = cache.lookup(check)
    assert fresh is not None and fresh.allowed  # 20 <= 25: the new state's answer, not the caller's
