"""Secrets are read from files (or the environment) and never written to the logs, at debug level,
in both log formats, on the paths that handle them: Lago requests, signed webhooks, a bad signature."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.integration.lago.conftest import seed
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import RedisServer, free_port, start_sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_from_files_never_reach_the_logs(
    tmp_path: Path, lago: LagoEmulator, redis_server: RedisServer, key_prefix: str, log_format: str
) -> None:
    seed(lago)
    api_key_file, hmac_key_file = tmp_path / "lago-api-key", tmp_path / "lago-hmac-key"
    api_key_file.write_text(lago.api_key + "\n")  # as mounted from a Secret, trailing newline included
    hmac_key_file.write_text(lago.signer.hmac_key)
    http_port = free_port()
    sidecar = start_sidecar(
        tmp_path, None,
        ["--source", "lago", "--store", "redis", "--redis-url", redis_server.url, "--redis-key-prefix", key_prefix,
         "--http-address", f"127.0.0.1:{http_port}", "--lago-api-url", lago.url, "--log-level", "debug",
         "--log-format", log_format],
        env={"ENTITLEMENTS_LAGO_API_KEY_FILE": str(api_key_file),
             "ENTITLEMENTS_LAGO_HMAC_KEY_FILE": str(hmac_key_file)},
    )  # fmt: skip
    try:
        lago.webhook_url = f"http://127.0.0.1:{http_port}/webhooks/lago"
        lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 44}})
        assert lago.flush() == [200]  # signed with the HMAC key, then a Lago read with the API key
        max_seats = pb.CheckEntitlementRequest(subscription_id="sub_0", feature_code="seats", privilege_code="max")
        eventually(lambda: stub(sidecar).CheckEntitlement(max_seats, timeout=5).value.int_value == 44, what="applied")
        forged = httpx.post(
            f"http://127.0.0.1:{http_port}/webhooks/lago",
            content=b'{"webhook_type": "subscription.updated"}',
            headers={"X-Lago-Signature-Algorithm": "hmac", "X-Lago-Signature": "bm90IGl0", "X-Lago-Unique-Key": "k"},
        )
        assert forged.status_code == 401 and lago.signer.hmac_key not in forged.text
    finally:
        sidecar.terminate()
    log = sidecar.log()
    assert ("DEBUG" if log_format == "text" else '"level":"DEBUG"') in log  # debug lines were written
    for secret in (lago.api_key, lago.signer.hmac_key):
        assert secret not in log
