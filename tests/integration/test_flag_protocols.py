"""flagd v1/v2 and OFREP details the provider interop tests do not reach: ResolveAll (the browser
provider's call), DISABLED privileges, ETag / If-None-Match, and bad requests."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import struct_pb2

from entitlements_sidecar.gen.flagd.evaluation.v1 import evaluation_pb2 as v1
from entitlements_sidecar.gen.flagd.evaluation.v1 import evaluation_pb2_grpc as v1_grpc
from entitlements_sidecar.gen.flagd.evaluation.v2 import evaluation_pb2 as v2
from entitlements_sidecar.gen.flagd.evaluation.v2 import evaluation_pb2_grpc as v2_grpc
from tests.support.processes import Sidecar, rpc_error, start_sidecar

pytestmark = pytest.mark.integration


def context(**fields: str) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update(fields)
    return value


SUBJECTS = ["sub_acme_main", "sub_acme_eu", "sub_globex", "sub_initech_next", "sub_umbrella_old", "sub_nobody"]
CATALOG_KEYS = ["seats", "seats:max", "seats:max_admins", "seats:root", "sso", "sso:provider", "sso:domain",
                "analytics_api", "audit.log", "audit.log:retention.days", "api", "api:calls_included",
                "api:calls_max"]  # fmt: skip


def test_v1_resolve_all_lists_the_subjects_flags(memory_sidecar: Sidecar) -> None:
    stub = v1_grpc.ServiceStub(memory_sidecar.channel)
    flags = stub.ResolveAll(v1.ResolveAllRequest(context=context(targetingKey="sub_acme_main")), timeout=5).flags
    assert flags["sso"].bool_value is True and flags["sso"].reason == "TARGETING_MATCH"
    assert flags["seats:max"].double_value == 25  # v1's AnyFlag carries numbers as doubles
    assert flags["sso:provider"].string_value == "okta"
    # removed for this subscription: answered false, as a single ResolveBoolean answers it
    assert flags["analytics_api"].HasField("bool_value") and flags["analytics_api"].bool_value is False


def _v1_single(stub: v1_grpc.ServiceStub, key: str, subject: str) -> tuple[str, object] | None:
    ctx = context(targetingKey=subject)
    calls: list[Callable[[], Any]] = [
        lambda: stub.ResolveBoolean(v1.ResolveBooleanRequest(flag_key=key, context=ctx), timeout=5),
        lambda: stub.ResolveInt(v1.ResolveIntRequest(flag_key=key, context=ctx), timeout=5),
        lambda: stub.ResolveString(v1.ResolveStringRequest(flag_key=key, context=ctx), timeout=5),
    ]
    for call in calls:
        try:
            answer = call()
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return None
            continue  # INVALID_ARGUMENT: another type
        return (answer.reason, answer.value)
    raise AssertionError(f"no v1 type answers {key!r}")


def test_bulk_answers_equal_the_singles_for_every_subject(memory_sidecar: Sidecar) -> None:
    stub = v1_grpc.ServiceStub(memory_sidecar.channel)
    url = f"{memory_sidecar.http_url}/ofrep/v1/evaluate/flags"
    for subject in SUBJECTS:
        bulk_v1 = stub.ResolveAll(v1.ResolveAllRequest(context=context(targetingKey=subject)), timeout=5).flags
        bulk_ofrep = httpx.post(url, json={"context": {"targetingKey": subject}}, timeout=5).json()["flags"]
        by_key = {flag["key"]: flag for flag in bulk_ofrep}
        assert set(by_key) == set(CATALOG_KEYS) - ({"seats:root"} if subject == "sub_acme_main" else set()), subject
        for key in CATALOG_KEYS:
            single = httpx.post(f"{url}/{key}", json={"context": {"targetingKey": subject}}, timeout=5)
            if key not in by_key:
                assert single.status_code == 404, (subject, key)  # a removed privilege of a held feature
                assert key not in bulk_v1 and _v1_single(stub, key, subject) is None
                continue
            assert single.status_code == 200 and single.json() == by_key[key], (subject, key)
            assert "variant" in by_key[key]  # OFREP providers read it on every answer
            v1_answer = _v1_single(stub, key, subject)
            if v1_answer is None:  # no value: v1 says NOT_FOUND singly and leaves it out of ResolveAll
                assert "value" not in by_key[key] and key not in bulk_v1, (subject, key)
            else:
                flag = bulk_v1[key]
                value = getattr(flag, str(flag.WhichOneof("value")))
                assert (flag.reason, value) == v1_answer, (subject, key)


def test_ofrep_reads_a_body_that_arrives_in_many_writes(memory_sidecar: Sidecar) -> None:
    host, port = memory_sidecar.http_url.removeprefix("http://").rsplit(":", 1)
    body = b'{"context": {"targetingKey": "sub_acme_main"}}'
    head = "POST /ofrep/v1/evaluate/flags/seats:max HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall((head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode())
        for i in range(0, len(body), 7):
            conn.sendall(body[i : i + 7])
            time.sleep(0.02)  # separate TCP segments, as a slow client sends them
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 200 OK", answer
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["value"] == 25


def test_privilege_of_a_feature_not_held_v2_no_value_v1_not_found(memory_sidecar: Sidecar) -> None:
    request_v2 = v2.ResolveIntRequest(flag_key="audit.log:retention.days", context=context(targetingKey="sub_globex"))
    answer = v2_grpc.ServiceStub(memory_sidecar.channel).ResolveInt(request_v2, timeout=5)
    assert answer.reason == "DISABLED" and not answer.HasField("value") and not answer.HasField("variant")
    request_v1 = v1.ResolveIntRequest(flag_key="audit.log:retention.days", context=context(targetingKey="sub_globex"))
    code, details = rpc_error(lambda: v1_grpc.ServiceStub(memory_sidecar.channel).ResolveInt(request_v1, timeout=5))
    assert code is grpc.StatusCode.NOT_FOUND and "no value here (not_entitled)" in details


def test_v2_errors_use_flagds_status_codes(memory_sidecar: Sidecar) -> None:
    stub = v2_grpc.ServiceStub(memory_sidecar.channel)
    acme = context(targetingKey="sub_acme_main")
    cases = [
        (lambda: stub.ResolveString(v2.ResolveStringRequest(flag_key="seats:max", context=acme), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT, "TYPE_MISMATCH"),
        (lambda: stub.ResolveInt(v2.ResolveIntRequest(flag_key="seats:nope", context=acme), timeout=5),
         grpc.StatusCode.NOT_FOUND, "FLAG_NOT_FOUND"),
        (lambda: stub.ResolveBoolean(v2.ResolveBooleanRequest(flag_key="sso", context=context()), timeout=5),
         grpc.StatusCode.FAILED_PRECONDITION, "TARGETING_KEY_MISSING"),
    ]  # fmt: skip
    for call, expected, prefix in cases:
        code, details = rpc_error(call)
        assert (code, details.split(":")[0]) == (expected, prefix)


def test_ofrep_bulk_etag_and_bad_requests(memory_sidecar: Sidecar) -> None:
    url = f"{memory_sidecar.http_url}/ofrep/v1/evaluate/flags"
    first = httpx.post(url, json={"context": {"targetingKey": "sub_acme_main"}}, timeout=5)
    assert first.status_code == 200
    flags = {flag["key"]: flag for flag in first.json()["flags"]}
    assert flags["seats:max"]["value"] == 25 and flags["sso"]["value"] is True
    etag = first.headers["ETag"]
    again = httpx.post(url, json={"context": {"targetingKey": "sub_acme_main"}}, headers={"If-None-Match": etag})
    assert again.status_code == 304
    other = httpx.post(url, json={"context": {"targetingKey": "sub_globex"}}, headers={"If-None-Match": etag})
    assert other.status_code == 200  # the ETag is this subject's answer, not a global version

    bad_json = httpx.post(f"{url}/sso", content=b"{not json", timeout=5)
    assert bad_json.status_code == 400 and bad_json.json()["errorCode"] == "PARSE_ERROR"
    no_key = httpx.post(f"{url}/sso", json={"context": {}}, timeout=5)
    assert no_key.status_code == 400 and no_key.json() == {
        "key": "sso",
        "errorCode": "TARGETING_KEY_MISSING",
        "errorDetails": "targetingKey (a subscription external id) or customerId is required",
    }
    missing = httpx.post(f"{url}/seats:nope", json={"context": {"targetingKey": "sub_globex"}}, timeout=5)
    assert missing.status_code == 404 and missing.json()["errorCode"] == "FLAG_NOT_FOUND"
    too_large = httpx.post(f"{url}/sso", content=b" " * (65 * 1024), timeout=5)
    assert too_large.status_code == 413


def test_event_stream_ready_keep_alive_then_unavailable_on_shutdown(tmp_path: Path, example_catalog: Path) -> None:
    sidecar = start_sidecar(tmp_path, example_catalog, ["--openfeature-keepalive-seconds", "0.2"])
    stream = v2_grpc.ServiceStub(sidecar.channel).EventStream(v2.EventStreamRequest(), timeout=30)
    try:
        assert next(stream).type == "provider_ready"
        assert next(stream).type == "keep_alive"
    finally:
        assert sidecar.terminate(keep_channel=True) == 0
    code, _ = rpc_error(lambda: [message for message in stream if message.type != "keep_alive"])
    assert code is grpc.StatusCode.UNAVAILABLE  # providers reconnect


@pytest.mark.parametrize(
    "bad_id", ["s" * 300, " sub_acme_main", "sub\x00acme", "../x"], ids=["long", "space", "nul", "path"]
)
def test_one_id_rule_for_every_protocol(memory_sidecar: Sidecar, bad_id: str) -> None:
    from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
    from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc

    ours = pb_grpc.EntitlementServiceStub(memory_sidecar.channel)
    code, details = rpc_error(
        lambda: ours.CheckEntitlement(pb.CheckEntitlementRequest(subscription_id=bad_id, feature_code="sso"), timeout=5)
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("subscription_id"), details
    flagd = v2_grpc.ServiceStub(memory_sidecar.channel)
    request = v2.ResolveBooleanRequest(flag_key="sso", context=context(targetingKey=bad_id))
    code, details = rpc_error(lambda: flagd.ResolveBoolean(request, timeout=5))
    # flagd has no INVALID_CONTEXT code, and its providers read INVALID_ARGUMENT as TYPE_MISMATCH
    assert code is grpc.StatusCode.FAILED_PRECONDITION and details.startswith("INVALID_CONTEXT: context.targetingKey")
    ofrep = httpx.post(f"{memory_sidecar.http_url}/ofrep/v1/evaluate/flags/sso",
                       json={"context": {"targetingKey": bad_id}}, timeout=5)  # fmt: skip
    assert ofrep.status_code == 400 and ofrep.json()["errorCode"] == "INVALID_CONTEXT", ofrep.text
    bulk = httpx.post(f"{memory_sidecar.http_url}/ofrep/v1/evaluate/flags",
                      json={"context": {"targetingKey": bad_id}}, timeout=5)  # fmt: skip
    assert bulk.status_code == 400 and bulk.json()["errorCode"] == "INVALID_CONTEXT", bulk.text
