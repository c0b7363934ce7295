"""`entitlements.v1.UsageService` on the gRPC port: check, consume and report usage of metered features.

A service of its own beside EntitlementService, so the check hot path (and its answer cache, which must
never hold an answer that carries usage) is untouched. Calls run on the event loop through the bridge,
bounded by the caller's deadline; every error maps through transport/wire.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

import grpc

from entitlements_sidecar import tracing
from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.usage_service import UsageService
from entitlements_sidecar.gen.entitlements.v1 import usage_pb2 as upb
from entitlements_sidecar.transport.grpc import mapping
from entitlements_sidecar.transport.grpc.loop_bridge import AbortContext, LoopBridge
from entitlements_sidecar.transport.grpc.usage_mapping import USAGE_REASONS, usage_to_proto
from entitlements_sidecar.transport.wire import grpc_status

_BATCH_CONCURRENCY = 16  # items of one ReportUsages in flight to Redis at once
SERVICE_NAME = upb.DESCRIPTOR.services_by_name["UsageService"].full_name


class UsageServicer:
    def __init__(self, usage: UsageService, bridge: LoopBridge, max_batch_size: int) -> None:
        self._usage = usage
        self._bridge = bridge
        self._max_batch = max_batch_size

    def handlers(self) -> dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]]:
        def unary(method: Any, request: Any, response: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                lambda req, context: self._bridge.call(method, req, context),
                request.FromString,
                response.SerializeToString,
            )

        return {
            SERVICE_NAME: {
                "CheckUsage": unary(self.CheckUsage, upb.CheckUsageRequest, upb.CheckUsageResponse),
                "ConsumeUsage": unary(self.ConsumeUsage, upb.ConsumeUsageRequest, upb.ConsumeUsageResponse),
                "ReportUsage": unary(self.ReportUsage, upb.ReportUsageRequest, upb.ReportUsageResponse),
                "ReportUsages": unary(self.ReportUsages, upb.ReportUsagesRequest, upb.ReportUsagesResponse),
            }
        }

    def close(self) -> None:
        return None  # no streams

    async def CheckUsage(self, request: upb.CheckUsageRequest, context: AbortContext) -> upb.CheckUsageResponse:
        try:
            with tracing.span("CheckUsage", feature=request.feature_code):
                answer = await self._usage.check(request.subscription_id, request.feature_code, request.requested)
            return upb.CheckUsageResponse(
                allowed=answer.decision.allowed,
                reason=USAGE_REASONS[answer.decision.reason],
                usage=usage_to_proto(answer),
            )
        except Exception as exc:
            await context.abort(*grpc_status(exc))

    async def ConsumeUsage(self, request: upb.ConsumeUsageRequest, context: AbortContext) -> upb.ConsumeUsageResponse:
        try:
            with tracing.span("ConsumeUsage", feature=request.feature_code):
                answer = await self._usage.consume(
                    request.subscription_id, request.feature_code, request.value, request.transaction_id
                )
            return upb.ConsumeUsageResponse(
                allowed=answer.decision.allowed,
                reason=USAGE_REASONS[answer.decision.reason],
                recorded=answer.recorded,
                duplicate=answer.duplicate,
                usage=usage_to_proto(answer),
            )
        except Exception as exc:
            await context.abort(*grpc_status(exc))

    async def ReportUsage(self, request: upb.ReportUsageRequest, context: AbortContext) -> upb.ReportUsageResponse:
        try:
            return await self._report(request, "")
        except Exception as exc:
            await context.abort(*grpc_status(exc))

    async def ReportUsages(self, request: upb.ReportUsagesRequest, context: AbortContext) -> upb.ReportUsagesResponse:
        if len(request.events) > self._max_batch:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"events: {len(request.events)} items is more than the limit of {self._max_batch}",
            )
        first: dict[tuple[str, str], int] = {}
        repeats: dict[int, InvalidArgumentError] = {}
        for index, event in enumerate(request.events):
            pair = (event.subscription_id, event.transaction_id)
            if pair in first:  # Lago would roll back a batch for it: refuse the item, keep the rest
                repeats[index] = InvalidArgumentError(
                    f"events[{index}].transaction_id", f"repeats events[{first[pair]}]"
                )
            else:
                first[pair] = index
        # Items of different counters are counted concurrently (a few at a time), so a batch costs a few
        # Redis round trips rather than one per event; the items of one subscription's metric go in request
        # order, so each one's `used` is what it was after the items before it. Results keep the order.
        slots = asyncio.Semaphore(_BATCH_CONCURRENCY)
        results: list[upb.ReportUsagesResult | None] = [None] * len(request.events)
        chains: dict[tuple[str, str], list[int]] = {}
        for index, event in enumerate(request.events):
            chains.setdefault((event.subscription_id, event.metric_code), []).append(index)

        async def chain(indexes: list[int]) -> None:
            async with slots:
                for index in indexes:
                    results[index] = await self._item(request.events[index], index, repeats.get(index))

        await asyncio.gather(*(chain(indexes) for indexes in chains.values()))
        return upb.ReportUsagesResponse(results=[result for result in results if result is not None])

    async def _item(
        self, event: upb.ReportUsageRequest, index: int, repeat: InvalidArgumentError | None
    ) -> upb.ReportUsagesResult:
        try:
            if repeat is not None:
                raise repeat
            return upb.ReportUsagesResult(response=await self._report(event, f"events[{index}]."))
        except Exception as exc:
            return upb.ReportUsagesResult(error=mapping.item_error(exc))

    async def _report(self, event: upb.ReportUsageRequest, where: str) -> upb.ReportUsageResponse:
        timestamp = event.timestamp.ToDatetime(tzinfo=UTC) if event.HasField("timestamp") else None
        with tracing.span("ReportUsage", metric=event.metric_code):
            recorded = await self._usage.report(
                event.subscription_id, event.metric_code, dict(event.properties), event.transaction_id, timestamp, where
            )
        return upb.ReportUsageResponse(
            recorded=recorded.recorded, duplicate=recorded.duplicate, used=recorded.used, fallback=recorded.fallback
        )
