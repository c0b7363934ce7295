"""Optional OpenTelemetry tracing: spans for the work behind a call (computed checks, Get, flag
evaluations, webhooks, queue batches, Lago requests), exported over OTLP/HTTP.

Off unless ENTITLEMENTS_OTEL_ENDPOINT is set; then the `otel` extra must be installed
(`pip install 'entitlements-sidecar[otel]'`). Answer-cache hits are not traced: they take
microseconds and a span would cost more than the answer. The tracer is process-wide, like
OpenTelemetry's own provider; `configure` is called once by app.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from entitlements_sidecar.domain.errors import ConfigError

_tracer: Any = None
_provider: Any = None


def configure(endpoint: str, service_name: str = "entitlements-sidecar", delay_ms: int = 1000) -> None:
    global _tracer, _provider
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            "ENTITLEMENTS_OTEL_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'entitlements-sidecar[otel]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay_ms))
    _provider, _tracer = provider, provider.get_tracer("entitlements_sidecar")


def shutdown() -> None:
    """Flush what is buffered (bounded by the exporter's timeout)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


@contextlib.contextmanager
def span(name: str, **attributes: str | int | bool) -> Iterator[None]:
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=attributes):
        yield
