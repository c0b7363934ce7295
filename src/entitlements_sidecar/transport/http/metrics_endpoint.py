"""GET /metrics: the Prometheus exposition of `Metrics`."""

from __future__ import annotations

from aiohttp import web

from entitlements_sidecar.metrics import Metrics


class MetricsEndpoint:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        body, content_type = self._metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})
