"""`make bench` cannot flatter: a server that fails one call in ten is caught by the per-run count check
(h2load alone counts a non-OK grpc-status as done), and a healthy one passes it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from bench.load import Server, frame, measure
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.support.processes import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fail_every", [0, 10])
def test_the_count_check_catches_a_server_that_fails_one_call_in_ten(tmp_path: Path, fail_every: int) -> None:
    if shutil.which("h2load") is None:
        pytest.fail("h2load is missing: `make test` installs Debian's nghttp2-client")
    port = free_port()
    command = [sys.executable, "-m", "bench.echo_server", "--stack", "sync", "--port", str(port),
               "--fail-every", str(fail_every)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTITLEMENTS_")}
    server = Server("echo-sync", command, port, env, cpu=None)
    try:
        body = frame(
            pb.CheckEntitlementRequest(subscription_id="s", feature_code="f").SerializeToString(), tmp_path, "b"
        )
        run = measure(server, "CheckEntitlement", body, 16, 1, 1, tmp_path, load_cpu=None)
    finally:
        server.stop()
    assert run.calls > 100
    if fail_every:
        assert not run.counts_ok and run.served < 0.95 * run.calls, run
    else:
        assert run.counts_ok, run
