"""With ENTITLEMENTS_OTEL_ENDPOINT set, spans reach an OTLP/HTTP collector (a real HTTP server here)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.support.processes import start_sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


class Collector(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.paths.append(self.path)
                server.exports.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def span_names(self) -> set[str]:
        return {
            span.name
            for export in self.exports
            for resource in export.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        }


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_computed_checks_are_traced_to_the_collector(
    tmp_path: Path, example_catalog: Path, collector: Collector
) -> None:
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    sidecar = start_sidecar(tmp_path, example_catalog, ["--otel-endpoint", endpoint])
    try:
        check = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="seats")
        assert stub(sidecar).CheckEntitlement(check, timeout=5).allowed
        eventually(lambda: "CheckEntitlement" in collector.span_names(), timeout=15, what="the span exported")
        assert set(collector.paths) == {"/v1/traces"}
        resource = collector.exports[0].resource_spans[0].resource
        names = {a.key: a.value.string_value for a in resource.attributes}
        assert names["service.name"] == "entitlements-sidecar"
    finally:
        sidecar.terminate()
