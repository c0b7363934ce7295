"""Prometheus metrics, served at GET /metrics on the HTTP port (transport/http/metrics_endpoint.py).

The hot path (an answer-cache hit, on a gRPC thread) only adds one to a plain counter under a lock;
everything else is read when Prometheus scrapes (`_Collector`), so metrics cost the hot path little
(`make bench` runs with them on). Computed checks (answer-cache misses) are also timed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CheckLabel = tuple[str, str]  # (result: allowed|denied, reason)


class CallCounts:
    """Calls answered OK per method, and checks by result and reason, under one lock (any thread).

    Calls served are logged at shutdown and are what benchmarks check load generators against
    (h2load counts a failed call as done)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._served = {"CheckEntitlement": 0, "CheckEntitlements": 0, "GetEntitlements": 0, "WatchEntitlements": 0}
        self._checks: dict[CheckLabel, int] = {}
        self.answer_cache_hits = 0

    def served(self, method: str) -> None:
        with self._lock:
            self._served[method] += 1

    def check(self, label: CheckLabel) -> None:
        with self._lock:
            self._checks[label] = self._checks.get(label, 0) + 1

    def hit(self, method: str, label: CheckLabel) -> None:
        """One check answered from the answer cache, as its own call (the hot path: one lock)."""
        with self._lock:
            self._served[method] += 1
            self._checks[label] = self._checks.get(label, 0) + 1
            self.answer_cache_hits += 1

    def hits(self, labels: list[CheckLabel]) -> None:
        """Checks of a batch answered from the answer cache."""
        with self._lock:
            checks = self._checks
            for label in labels:
                checks[label] = checks.get(label, 0) + 1
            self.answer_cache_hits += len(labels)

    def served_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._served)

    def checks_snapshot(self) -> dict[CheckLabel, int]:
        with self._lock:
            return dict(self._checks)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = CallCounts()
        self.check_seconds = Histogram(
            "entitlements_check_duration_seconds",
            "Time to compute a check that was not answered from the answer cache (L1 or Redis read included)",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=self.registry,
        )
        self.webhooks = Counter(
            "entitlements_webhooks_total",
            "Lago webhooks received, by type and outcome",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.http_rejected = Counter(
            "entitlements_http_rejected_total",
            "HTTP requests refused before parsing: too large (431), too slow (408) or malformed (400)",
            ["reason"],
            registry=self.registry,
        )
        self.reconciliation_repairs = Counter(
            "entitlements_reconciliation_repairs_total",
            "Subscriptions that periodic reconciliation found wrong and repaired",
            registry=self.registry,
        )
        self.sync_lag = Gauge(
            "entitlements_sync_lag_seconds",
            "Seconds since the source of truth last confirmed the map (see /readyz)",
            registry=self.registry,
        )
        self.snapshot_age = Gauge(
            "entitlements_snapshot_version_age_seconds",
            "Seconds since the map was last loaded or reconciled in full",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "entitlements_queue_depth",
            "Webhook events queued or being applied (syncer role)",
            registry=self.registry,
        )
        self.usage_forwarded = Counter(
            "entitlements_usage_events_forwarded_total",
            "Recorded usage events Lago took (or already had: a resend after a crash)",
            registry=self.registry,
        )
        self.usage_refused = Counter(
            "entitlements_usage_events_refused_total",
            "Recorded usage events Lago refused for good; kept in the refused list with the reason",
            registry=self.registry,
        )
        self._l1: Callable[[], tuple[int, int]] | None = None
        self._open_streams: Callable[[], int] | None = None
        self._watched: list[tuple[str, str, Callable[[], float], bool]] = []
        self.registry.register(_Collector(self))

    def count_check(self, allowed: bool, reason: str) -> None:
        self.calls.check(("allowed" if allowed else "denied", reason))

    def watch_l1(self, counts: Callable[[], tuple[int, int]]) -> None:
        """`counts` returns the in-process cache's (hits, misses) so far."""
        self._l1 = counts

    def watch(self, name: str, help_text: str, read: Callable[[], float], counter: bool = False) -> None:
        """A gauge (or, with `counter`, a counter: `name` without `_total`) kept by another part, read when
        Prometheus scrapes."""
        self._watched.append((name, help_text, read, counter))

    def watch_streams(self, open_streams: Callable[[], int]) -> None:
        """`open_streams` returns how many Watch and OpenFeature event streams are open."""
        self._open_streams = open_streams

    def timer(self) -> _Timer:
        return _Timer(self.check_seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text Prometheus scrapes, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Timer:
    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self._histogram.observe(time.perf_counter() - self._started)


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        checks = CounterMetricFamily(
            "entitlements_checks", "Checks answered, by result and reason", labels=["result", "reason"]
        )
        for (result, reason), count in sorted(self._metrics.calls.checks_snapshot().items()):
            checks.add_metric([result, reason], count)
        yield checks
        yield CounterMetricFamily(
            "entitlements_answer_cache_hits",
            "Checks answered from pre-serialized answers (also counted in entitlements_checks)",
            value=self._metrics.calls.answer_cache_hits,
        )
        for name, help_text, read, counter in self._metrics._watched:
            family = CounterMetricFamily if counter else GaugeMetricFamily
            yield family(name, help_text, value=float(read()))
        if self._metrics._open_streams is not None:
            streams = GaugeMetricFamily("entitlements_open_streams", "Open Watch and OpenFeature event streams")
            streams.add_metric([], self._metrics._open_streams())
            yield streams
        if self._metrics._l1 is not None:
            hits, misses = self._metrics._l1()
            yield CounterMetricFamily("entitlements_l1_hits", "In-process cache hits", value=hits)
            yield CounterMetricFamily("entitlements_l1_misses", "In-process cache misses", value=misses)
            ratio = GaugeMetricFamily("entitlements_l1_hit_ratio", "L1 hits ÷ (hits + misses) since start")
            ratio.add_metric([], hits / (hits + misses) if hits + misses else 0.0)
            yield ratio
