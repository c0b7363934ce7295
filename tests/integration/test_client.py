"""The Python client against a running sidecar: remote checks, batches, and the Watch-fed local cache
answering exactly what the sidecar would."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from entitlements_sidecar.client import AsyncEntitlementsClient, Check, CheckError, CheckResult, EntitlementsClient
from tests.integration.test_grpc_api import CASES, edit
from tests.support.processes import Sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def as_check(fields: dict[str, object]) -> Check:
    return Check(
        feature=str(fields["feature_code"]),
        subscription_id=str(fields.get("subscription_id", "")),
        customer_id=str(fields.get("customer_id", "")),
        privilege=str(fields.get("privilege_code", "")),
        quantity=fields.get("quantity"),  # type: ignore[arg-type]
        value=fields.get("value"),  # type: ignore[arg-type]
    )


def comparable(result: CheckResult) -> tuple[object, ...]:
    return (result.allowed, result.reason, result.value, result.subscription_id, result.version)


def test_remote_checks_batches_and_get(memory_sidecar: Sidecar) -> None:
    with EntitlementsClient(memory_sidecar.address) as client:
        result = client.check("seats", subscription_id="sub_acme_main", privilege="max", quantity=30)
        assert (result.allowed, result.reason, result.value, result.source) == (
            False,
            "quantity_exceeds_limit",
            25,
            "memory",
        )
        results = client.check_many([Check("sso", customer_id="acme"), Check("", subscription_id="x")])
        assert isinstance(results[0], CheckResult) and results[0].allowed
        assert isinstance(results[1], CheckError) and results[1].field == "checks[1].feature_code"
        assert client.get(customer_id="acme").found
        with pytest.raises(grpc.RpcError):
            client.check("seats", subscription_id="a", customer_id="b")


def test_watched_subjects_are_answered_locally_exactly_as_the_sidecar_would(
    memory_sidecar: Sidecar, example_catalog: Path
) -> None:
    checks = [as_check(fields) for fields, *_ in CASES]
    with EntitlementsClient(memory_sidecar.address) as remote, EntitlementsClient(memory_sidecar.address) as local:
        local.watch(
            subscription_ids={c.subscription_id for c in checks if c.subscription_id},
            customer_ids={c.customer_id for c in checks if c.customer_id},
        )
        for check in checks:
            here = local.check(**{k: getattr(check, k) for k in Check.__slots__})
            there = remote.check(**{k: getattr(check, k) for k in Check.__slots__})
            assert here.source == "local", check
            assert comparable(here) == comparable(there), check
        # A malformed check on a watched subject is not answered locally: the sidecar rejects it.
        with pytest.raises(grpc.RpcError) as rejected:
            local.check("seats", subscription_id="sub_acme_main", privilege="max", quantity=-1)
        assert rejected.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "quantity" in (rejected.value.details() or "")

        text = example_catalog.read_text().replace("seats: {max: 25}", "seats: {max: 26}")
        example_catalog.write_text(text)
        stat = example_catalog.stat()
        os.utime(example_catalog, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        eventually(lambda: local.check("seats", subscription_id="sub_acme_main", privilege="max").value == 26,
                   what="local copy updated by the watch stream")  # fmt: skip


def test_local_answers_stop_when_the_stream_ends(memory_sidecar: Sidecar) -> None:
    client = EntitlementsClient(memory_sidecar.address, timeout=1)
    client.watch(subscription_ids=["sub_globex"])
    assert client.check("seats", subscription_id="sub_globex").source == "local"
    memory_sidecar.terminate()

    def asks_the_sidecar() -> bool:
        try:
            client.check("seats", subscription_id="sub_globex")
        except grpc.RpcError:
            return True  # no local answer any more, and no sidecar to ask
        return False

    eventually(asks_the_sidecar, what="local cache dropped")
    client.close()


def test_a_second_watch_adds_its_subjects_to_the_one_stream(memory_sidecar: Sidecar, example_catalog: Path) -> None:
    client = EntitlementsClient(memory_sidecar.address, timeout=1)
    try:
        client.watch(subscription_ids=["sub_acme_main"])
        client.watch(customer_ids=["acme"])
        client.watch(subscription_ids=["sub_acme_main"])  # watched already: nothing to re-open

        def local_max() -> list[object]:  # None where the answer did not come from the local copy
            answers = [client.check("seats", privilege="max", subscription_id="sub_acme_main"),
                       client.check("seats", privilege="max", customer_id="acme")]  # fmt: skip
            return [a.value if a.source == "local" else None for a in answers]

        assert local_max() == [25, 25]
        eventually(lambda: memory_sidecar.open_streams() == 1, what="the first stream replaced, not kept beside")
        edit(example_catalog, "seats: {max: 25}", "seats: {max: 26}")
        eventually(lambda: local_max() == [26, 26], what="both subjects followed the change")
    finally:
        client.close()


async def test_async_client(memory_sidecar: Sidecar) -> None:
    client = AsyncEntitlementsClient(memory_sidecar.address)
    result = await client.check("sso", subscription_id="sub_acme_main", privilege="provider", value="okta")
    assert (result.allowed, result.value) == (True, "okta")
    [item] = await client.check_many([Check("seats", customer_id="acme", privilege="max")])
    assert isinstance(item, CheckResult) and item.value == 25
    assert (await client.get(subscription_id="sub_acme_main")).plan_code == "pro"
    await client.close()
