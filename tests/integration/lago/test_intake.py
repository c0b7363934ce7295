"""The webhook endpoint: signatures, malformed input and limits answer the documented status and change
nothing; duplicates cause one refresh."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from tests.integration.lago.conftest import Syncer, SyncerFactory, seed
from tests.integration.lago.views import sidecar_view
from tests.lago_emulator.server import LagoEmulator
from tests.lago_emulator.webhooks import rails_json
from tests.support.wait import eventually, holds_for

pytestmark = pytest.mark.integration


def post(syncer: Syncer, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(syncer.webhook_url, content=body, headers=headers, timeout=10)


def reads_of(lago: LagoEmulator, external_id: str) -> int:
    return len([r for r in lago.controls.api_requests() if r[2] == f"/api/v1/subscriptions/{external_id}"])


def test_the_same_webhook_delivered_1000_times_at_once_refreshes_once(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 30}})
    [webhook] = lago.take_outbox()
    before = reads_of(lago, "sub_0")
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(lambda _: lago.deliver([webhook])[0], range(1000)))
    assert statuses == [200] * 1000
    eventually(lambda: sidecar_view(syncer.sidecar, "sub_0")[1]["seats"]["max"] == 30, what="applied")
    # Any further refresh would have been queued before the one we saw; watch the worker drain for a second.
    holds_for(lambda: reads_of(lago, "sub_0") - before == 1, seconds=1.0, what="exactly one refresh")
    metrics = httpx.get(f"http://127.0.0.1:{syncer.http_port}/metrics", timeout=5).text
    assert 'entitlements_webhooks_total{outcome="queued",type="subscription.updated"} 1.0' in metrics
    assert 'entitlements_webhooks_total{outcome="duplicate",type="subscription.updated"} 999.0' in metrics
    assert "entitlements_queue_depth " in metrics and "entitlements_reconciliation_repairs_total 0.0" in metrics


def test_rejected_deliveries_change_nothing(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    syncer = start_syncer("--webhook-max-body-bytes", "4096", "--lago-jwt-issuer", lago.url)
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 77}})
    [webhook] = lago.take_outbox()
    body = rails_json(webhook.payload)
    signer = lago.signer
    good = signer.headers(webhook, body, "hmac")
    tampered = body.replace(b'"max":77', b'"max":78')
    garbage = b'{"webhook_type": "subscription.updated", '
    other_issuer = signer.jwt_signature(body, iss="https://evil.example")
    reads_before = reads_of(lago, "sub_0")  # the cold full sync read it once
    cases = [
        ("no signature", body, {k: v for k, v in good.items() if k != "X-Lago-Signature"}, 401),
        ("no algorithm", body, {k: v for k, v in good.items() if k != "X-Lago-Signature-Algorithm"}, 401),
        ("bad hmac", tampered, good, 401),
        ("hmac with another key", body, {**good, "X-Lago-Signature": signer.hmac_signature(body, key="wrong")}, 401),
        ("unknown algorithm", body, {**good, "X-Lago-Signature-Algorithm": "rsa"}, 401),
        ("jwt header, hmac value", body, {**good, "X-Lago-Signature-Algorithm": "jwt"}, 401),
        ("garbled jwt", body, {**good, "X-Lago-Signature-Algorithm": "jwt", "X-Lago-Signature": "a.b.c"}, 401),
        ("expired jwt", body, {**good, "X-Lago-Signature-Algorithm": "jwt",
                               "X-Lago-Signature": signer.jwt_signature(body, exp=int(time.time()) - 60)}, 401),
        ("jwt for another body", tampered, {**good, "X-Lago-Signature-Algorithm": "jwt",
                                            "X-Lago-Signature": signer.jwt_signature(body)}, 401),
        ("jwt from another issuer", body, {**good, "X-Lago-Signature-Algorithm": "jwt",
                                           "X-Lago-Signature": other_issuer}, 401),
        ("malformed json", garbage, {**good, "X-Lago-Signature": signer.hmac_signature(garbage)}, 400),
        ("no unique key", body, {k: v for k, v in good.items() if k != "X-Lago-Unique-Key"}, 400),
        ("too large", b" " * 5000 + body, {**good, "X-Lago-Signature": signer.hmac_signature(b" " * 5000 + body)}, 413),
    ]  # fmt: skip
    for name, payload, headers, status in cases:
        response = post(syncer, payload, headers)
        assert response.status_code == status, name
        assert response.headers["Content-Type"].startswith("application/json"), name
        assert response.json()["error"], name
    assert reads_of(lago, "sub_0") == reads_before  # nothing was queued, so nothing was re-read
    assert sidecar_view(syncer.sidecar, "sub_0")[1]["seats"]["max"] == 10
    # and the genuine delivery still works afterwards (its unique key was never consumed)
    assert post(syncer, body, good).status_code == 200
    eventually(lambda: sidecar_view(syncer.sidecar, "sub_0")[1]["seats"]["max"] == 77, what="genuine delivery")


def test_large_body_arriving_in_many_chunks_is_read_whole(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.patch_subscription_entitlements("sub_0", {"sso": {"domain": "d" * 200_000}})
    [webhook] = lago.take_outbox()
    body = rails_json(webhook.payload)
    assert 400_000 < len(body) < 1_048_576  # the value appears three times in the payload
    response = post(syncer, body, lago.signer.headers(webhook, body, "hmac"))
    assert response.status_code == 200, response.text
    eventually(lambda: len(sidecar_view(syncer.sidecar, "sub_0")[1]["sso"]["domain"]) == 200_000, what="applied")


def test_large_jwt_header_is_accepted(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.patch_subscription_entitlements("sub_0", {"sso": {"domain": "x" * 60_000}})
    [webhook] = lago.take_outbox()
    body = rails_json(webhook.payload)
    headers = lago.signer.headers(webhook, body, "jwt")
    assert len(headers["X-Lago-Signature"]) > 64 * 1024
    assert post(syncer, body, headers).status_code == 200
    eventually(lambda: len(sidecar_view(syncer.sidecar, "sub_0")[1]["sso"]["domain"]) == 60_000, what="applied")


def test_unrelated_webhook_types_are_acknowledged_and_ignored(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    syncer = start_syncer()
    body = rails_json({"webhook_type": "invoice.created", "object_type": "invoice", "invoice": {"lago_id": "x"}})
    headers = {"X-Lago-Signature": lago.signer.hmac_signature(body), "X-Lago-Signature-Algorithm": "hmac",
               "X-Lago-Unique-Key": "k-1", "Content-Type": "application/json"}  # fmt: skip
    response = post(syncer, body, headers)
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})


def test_ids_that_grpc_would_refuse_are_refused_at_intake(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago)
    syncer = start_syncer()
    cases = [
        ("subscription", "external_id", "../plans/pro", "contains '/'"),
        ("subscription", "external_id", "..", "'..' is not an id"),
        ("subscription", "external_id", " sub_0", "leading or trailing whitespace"),
        ("subscription", "external_id", "sub\u00000", "control character"),
        ("subscription", "external_id", "s" * 256, "longer than 255 characters"),
        ("plan", "code", "pro\n", "leading or trailing whitespace"),
        ("feature", "code", "", "is empty"),
    ]
    webhook_type = {"subscription": "subscription.updated", "plan": "plan.updated", "feature": "feature.updated"}
    requests_before = len(lago.controls.api_requests())
    for index, (object_type, key, value, problem) in enumerate(cases):
        body = rails_json({"webhook_type": webhook_type[object_type], "object_type": object_type,
                           "organization_id": lago.state.organization_id, object_type: {key: value}})  # fmt: skip
        headers = {"X-Lago-Signature": lago.signer.hmac_signature(body), "X-Lago-Signature-Algorithm": "hmac",
                   "X-Lago-Unique-Key": f"k-{index}", "Content-Type": "application/json"}  # fmt: skip
        response = post(syncer, body, headers)
        assert response.status_code == 400, value
        assert response.json()["error"].startswith(f"{object_type}.{key}: ") and problem in response.json()["error"]
    holds_for(lambda: len(lago.controls.api_requests()) == requests_before, seconds=0.5, what="no Lago read")
    metrics = httpx.get(f"http://127.0.0.1:{syncer.http_port}/metrics", timeout=5).text
    assert "entitlements_queue_depth 0.0" in metrics


def test_refused_deliveries_are_logged_with_the_reason_and_never_the_signature(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 31}})
    [webhook] = lago.take_outbox()
    body = rails_json(webhook.payload)
    wrong = {**lago.signer.headers(webhook, body, "hmac"), "X-Lago-Signature": lago.signer.hmac_signature(body, "bad")}
    for _ in range(50):  # a misconfigured HMAC token: Lago retries, and other deliveries keep coming
        assert post(syncer, body, wrong).status_code == 401
    log = syncer.sidecar.log()
    refused = [line for line in log.splitlines() if "webhook refused" in line]
    assert 1 <= len(refused) <= 2, refused  # throttled: one line per outcome every 10 s
    assert "WARNING" in refused[0] and "hmac signature does not match the body" in refused[0]
    assert "status=401" in refused[0] and wrong["X-Lago-Signature"] not in log


def test_a_header_flood_with_a_good_signature_is_refused_before_it_is_parsed(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago)
    syncer = start_syncer()
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 32}})
    [webhook] = lago.take_outbox()
    body = rails_json(webhook.payload)
    flood = {f"X-Filler-{i}": "a" * 200_000 for i in range(40)}  # was answered 200 "queued"
    try:
        response = post(syncer, body, {**lago.signer.headers(webhook, body, "hmac"), **flood})
        status = response.status_code
    except httpx.HTTPError:
        status = 0  # the server may close before the client has finished sending
    assert status in (431, 0)
    metrics = httpx.get(f"http://127.0.0.1:{syncer.http_port}/metrics", timeout=5).text
    assert 'outcome="queued"' not in metrics
    assert 'entitlements_http_rejected_total{reason="too_large"} 1.0' in metrics
    # the long line the JWT signature needs is the signature's alone
    huge_signature = {**lago.signer.headers(webhook, body, "hmac"), "X-Other": "b" * 100_000}
    assert post(syncer, body, huge_signature).status_code == 431
