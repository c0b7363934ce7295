"""The conformance cases (conformance/cases.json) against the domain's check rules, through ReadService
over the memory store: the rules the clients' local evaluators are held to (tests/unit/test_client_conformance.py)."""

from __future__ import annotations

import pytest

from tests.support.conformance import Case, answer, as_json, cases, expected, query, rejected, service_for

CASES = cases()


def test_the_cases_cover_every_reason_a_store_read_can_give() -> None:
    from entitlements_sidecar.domain.check import Reason

    covered = {case.expect["reason"] for case in CASES if "reason" in case.expect}
    # The failure policy's reason comes from the failure policy's own tests, not from a state.
    assert covered == {r.value for r in Reason} - {Reason.FAILURE_POLICY.value}
    assert len({case.name for case in CASES}) == len(CASES)  # a name is how a failure is found


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_case(case: Case) -> None:
    error = rejected(case.check)
    if error is not None or "error" in case.expect:
        assert error == expected(case)  # INVALID_ARGUMENT naming the field, before any read
        return
    service = await service_for(case)
    assert as_json(answer(await service.check(query(case.check)))) == as_json(expected(case))
