"""What readiness asks of whatever keeps the map true (domain/ports.py `SyncProbe`), for each way it is
kept: the catalog poller of this process, or the syncers' marker in the shared store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from entitlements_sidecar.sync.catalog_sync import CatalogSync
from entitlements_sidecar.sync.map_watch import MapWatch
from entitlements_sidecar.sync.usage_forwarder import UsageForwarder
from entitlements_sidecar.sync.worker import SyncWorker


class CatalogProbe:
    def __init__(self, catalog: CatalogSync) -> None:
        self._catalog = catalog

    def confirmed_at(self) -> float | None:
        return self._catalog.confirmed_at

    def snapshot_at(self) -> float | None:
        return self._catalog.applied_at

    def problem(self) -> str | None:
        return self._catalog.problem()

    def reconciliation(self) -> dict[str, Any] | None:
        return None  # the file is re-read whenever it changes: nothing to reconcile


class MarkerProbe:
    """The map's marker as the last readiness probe read it; `worker` and `forwarder` only in a syncer
    process. Their problems are warnings: the map stays readable while they wait."""

    def __init__(
        self,
        watch: MapWatch,
        worker: SyncWorker | None,
        forwarder: UsageForwarder | None = None,
        reconciliation: Callable[[], dict[str, Any] | None] = lambda: None,
    ) -> None:
        self._watch = watch
        self._worker = worker
        self._forwarder = forwarder
        self._reconciliation = reconciliation

    def reconciliation(self) -> dict[str, Any] | None:
        return self._reconciliation()

    def confirmed_at(self) -> float | None:
        at_ms = self._watch.last.confirmed_at if self._watch.last else None
        return None if at_ms is None else at_ms / 1000

    def snapshot_at(self) -> float | None:
        at_ms = self._watch.last.loaded_at if self._watch.last else None
        return None if at_ms is None else at_ms / 1000

    def problem(self) -> str | None:
        problems = [part.problem for part in (self._worker, self._forwarder) if part is not None and part.problem]
        return "; ".join(problems) or None
