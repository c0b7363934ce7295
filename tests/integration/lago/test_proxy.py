"""Lago through a forward proxy (an egress proxy in front of Lago's API): named by
ENTITLEMENTS_LAGO_PROXY_URL or by the usual proxy variables, bypassed by NO_PROXY, and a proxy that dies
loses no acknowledged webhook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.integration.lago.conftest import SyncerFactory, seed
from tests.lago_emulator.server import LagoEmulator
from tests.support.forward_proxy import ForwardProxy
from tests.support.processes import Sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

NO_PROXY_VARIABLES = {name: "" for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy")} | {
    "NO_PROXY": "",
    "no_proxy": "",
}
MAX_SEATS = pb.CheckEntitlementRequest(subscription_id="sub_0", feature_code="seats", privilege_code="max")


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    started = ForwardProxy().start()
    yield started
    started.stop()


def _max_seats(sidecar: Sidecar) -> int:
    return int(stub(sidecar).CheckEntitlement(MAX_SEATS, timeout=5).value.int_value)


def test_the_configured_proxy_carries_every_lago_request(
    start_syncer: SyncerFactory, lago: LagoEmulator, proxy: ForwardProxy
) -> None:
    seed(lago)
    syncer = start_syncer("--lago-proxy-url", proxy.url, env=NO_PROXY_VARIABLES)
    assert _max_seats(syncer.sidecar) == 10
    assert proxy.carried, "no request went through the proxy"
    assert all(c.url.startswith(f"{lago.url}/api/v1/") and c.status == 200 for c in proxy.carried)


def test_the_proxy_variables_are_followed_and_no_proxy_bypasses_them(
    start_syncer: SyncerFactory, lago: LagoEmulator, proxy: ForwardProxy
) -> None:
    seed(lago)
    through = start_syncer(name="through", env={**NO_PROXY_VARIABLES, "HTTP_PROXY": proxy.url})
    assert _max_seats(through.sidecar) == 10 and proxy.carried
    through.sidecar.terminate()
    carried = len(proxy.carried)
    around = start_syncer(name="around", env={**NO_PROXY_VARIABLES, "HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"})
    assert _max_seats(around.sidecar) == 10
    assert len(proxy.carried) == carried, "NO_PROXY names Lago's host, yet the proxy carried its requests"


def test_a_webhook_acknowledged_while_the_proxy_is_down_is_applied_once_it_is_back(
    start_syncer: SyncerFactory, lago: LagoEmulator, proxy: ForwardProxy
) -> None:
    seed(lago)
    syncer = start_syncer("--lago-proxy-url", proxy.url, env=NO_PROXY_VARIABLES)
    assert _max_seats(syncer.sidecar) == 10
    proxy.stop()  # the egress path to Lago is gone; webhooks still arrive
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 42}})
    assert lago.flush() == [200]  # acknowledged: queued, to be applied once Lago can be read
    restarted = ForwardProxy(port=proxy.port).start()
    try:
        eventually(lambda: _max_seats(syncer.sidecar) == 42, timeout=30, what="the webhook applied through the proxy")
        assert any(c.url.startswith(f"{lago.url}/api/v1/subscriptions/sub_0") for c in restarted.carried)
    finally:
        restarted.stop()
