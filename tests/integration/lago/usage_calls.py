"""Usage calls and views shared by the Lago usage scenarios: a meters file on a seeded organization (the
`meters` fixture is in conftest.py), gRPC usage calls, and what the emulator's ledger holds."""

from __future__ import annotations

import httpx

from entitlements_sidecar.gen.entitlements.v1 import usage_pb2 as upb
from entitlements_sidecar.gen.entitlements.v1 import usage_pb2_grpc as upb_grpc
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import Sidecar


def consume(sidecar: Sidecar, transaction_id: str, subscription: str = "sub_0") -> upb.ConsumeUsageResponse:
    request = upb.ConsumeUsageRequest(
        subscription_id=subscription, feature_code="api", value=1, transaction_id=transaction_id
    )
    return upb_grpc.UsageServiceStub(sidecar.channel).ConsumeUsage(request, timeout=5)


def report(sidecar: Sidecar, transaction_id: str, tokens: str) -> upb.ReportUsageResponse:
    request = upb.ReportUsageRequest(
        subscription_id="sub_1", metric_code="tokens", properties={"tokens": tokens}, transaction_id=transaction_id
    )
    return upb_grpc.UsageServiceStub(sidecar.channel).ReportUsage(request, timeout=5)


def ledger(lago: LagoEmulator) -> list[tuple[str, str, str]]:
    return sorted((e["external_subscription_id"], e["code"], e["transaction_id"]) for e in lago.state.usage.events)


def metric(sidecar: Sidecar, name: str) -> float:
    text = httpx.get(f"{sidecar.http_url}/metrics", timeout=5).text
    return float(text.split(f"\n{name} ")[1].split()[0])
