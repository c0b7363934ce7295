"""Pre-serialized answers for the hot RPCs, keyed by the request's bytes.

Applications ask the same questions over and over. When an answer came from the in-process cache
(fresh, default consistency), the serialized response is kept and the next identical request is
answered without parsing, checking or serializing anything. Any change reported by the store
empties it, so it is never behind the L1 it was built from. Batches are split on the wire into
their items, and each item is looked up the same way.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import DecodeError

from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.ports import Change, EntitlementStore
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.metrics import CheckLabel, Metrics
from entitlements_sidecar.transport.grpc import mapping
from entitlements_sidecar.transport.grpc.loop_bridge import AbortContext, LoopBridge
from entitlements_sidecar.transport.grpc.servicer import EntitlementServicer

_FIELD_1_BYTES = 0x0A  # protobuf tag: field 1, length-delimited
_SOURCE_MEMORY = pb.SOURCE_MEMORY


class AnswerCache:
    """Hits are answered on the gRPC thread that received the call; misses run on the event loop.

    The dictionary is only written on the loop (by misses and the change listener); threads only
    read it, and a single dict read or write is atomic in CPython.
    """

    def __init__(
        self,
        servicer: EntitlementServicer,
        store: EntitlementStore,
        bridge: LoopBridge,
        metrics: Metrics,
        max_entries: int = 10_000,
    ) -> None:
        self._servicer = servicer
        self._bridge = bridge
        self._calls = metrics.calls
        # Request bytes -> (response bytes, (result, reason) for /metrics).
        self._answers: dict[bytes, tuple[bytes, CheckLabel]] = {}
        self._as_items: dict[bytes, tuple[bytes, CheckLabel]] = {}  # framed as a batch's results[i].response
        self._max_entries = max_entries
        self._fresh = True
        store.add_listener(self._on_change)

    def set_fresh(self, fresh: bool) -> None:
        """False while the map is older than the staleness budget: keep nothing, so every check goes
        through the failure policy (docs/adr/0006) instead of being answered from here."""
        if not fresh:
            self._clear()
        self._fresh = fresh

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """Raw-bytes handlers for CheckEntitlement and CheckEntitlements (no (de)serializers)."""
        return {
            "CheckEntitlement": grpc.unary_unary_rpc_method_handler(self.check),
            "CheckEntitlements": grpc.unary_unary_rpc_method_handler(self.check_many),
        }

    def __len__(self) -> int:
        return len(self._answers)

    def check(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        entry = self._answers.get(raw)
        if entry is not None:
            self._calls.hit("CheckEntitlement", entry[1])
            return entry[0]
        return self._bridge.call(self._check_on_loop, raw, context)

    def check_many(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        items = _split(raw)
        if items is not None and len(items) <= self._servicer.max_batch_size:
            as_items = self._as_items
            parts = [as_items.get(item) for item in items]
            if None not in parts:
                self._calls.hits([part[1] for part in parts])  # type: ignore[index]  # no None: checked above
                self._calls.served("CheckEntitlements")
                return b"".join(part[0] for part in parts)  # type: ignore[index]  # no None: checked above
        return self._bridge.call(self._check_many_on_loop, raw, context)

    async def _check_on_loop(self, raw: bytes, context: AbortContext) -> bytes:
        try:
            request = pb.CheckEntitlementRequest.FromString(raw)
        except DecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request: not a valid CheckEntitlementRequest")
        response = await self._servicer.CheckEntitlement(request, context)
        return self._keep(raw, request, response)

    async def _check_many_on_loop(self, raw: bytes, context: AbortContext) -> bytes:
        items = _split(raw)
        if items is None or len(items) > self._servicer.max_batch_size:
            # Not plain repeated items (or too many): the servicer parses it and says what is wrong.
            try:
                request = pb.CheckEntitlementsRequest.FromString(raw)
            except DecodeError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request: not a valid CheckEntitlementsRequest")
            return (await self._servicer.CheckEntitlements(request, context)).SerializeToString()
        parts: list[bytes] = []
        missed: list[tuple[int, bytes, pb.CheckEntitlementRequest | None]] = []
        for index, item in enumerate(items):
            entry = self._answers.get(item)
            if entry is not None:
                parts.append(_field_1(_field_1(entry[0])))  # results[index].response
                self._calls.hits([entry[1]])
                continue
            try:
                check: pb.CheckEntitlementRequest | None = pb.CheckEntitlementRequest.FromString(item)
            except DecodeError:
                check = None
            missed.append((index, item, check))
            parts.append(b"")  # filled below
        await self._servicer.warm([check for _, _, check in missed if check is not None])
        for index, item, check in missed:
            if check is None:
                bad = InvalidArgumentError(f"checks[{index}]", "not a valid CheckEntitlementRequest")
                result = pb.CheckEntitlementsResult(error=mapping.item_error(bad))
            else:
                result = await self._servicer.check_item(check, index)
                if result.WhichOneof("outcome") == "response":
                    self._keep(item, check, result.response)
            parts[index] = _field_1(result.SerializeToString())
        self._calls.served("CheckEntitlements")
        return b"".join(parts)

    def _keep(self, raw: bytes, request: pb.CheckEntitlementRequest, response: pb.CheckEntitlementResponse) -> bytes:
        answer = response.SerializeToString()
        freshness = response.freshness
        keep = self._fresh and freshness.source == _SOURCE_MEMORY and not freshness.stale
        # A check with a requested usage carries live usage: it is never kept.
        if keep and not request.HasField("consistency") and not request.HasField("requested_usage"):
            if len(self._answers) >= self._max_entries:
                self._clear()  # a cheap bound: refilling costs one normal check per question
            label = ("allowed" if response.allowed else "denied", pb.Reason.Name(response.reason))
            self._answers[raw] = (answer, label)
            self._as_items[raw] = (_field_1(_field_1(answer)), label)
        return answer

    def _on_change(self, change: Change) -> None:
        self._clear()

    def _clear(self) -> None:
        # Items first: a thread that finds an answer in one dict but not the other takes the slow path.
        self._as_items.clear()
        self._answers.clear()


def _field_1(payload: bytes) -> bytes:
    return bytes((_FIELD_1_BYTES,)) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _split(raw: bytes) -> list[bytes] | None:
    """The items of a CheckEntitlementsRequest (field 1, repeated), or None if it has anything else."""
    items: list[bytes] = []
    position, end = 0, len(raw)
    while position < end:
        if raw[position] != _FIELD_1_BYTES:
            return None
        position += 1
        if position < end and raw[position] < 0x80:  # the usual case: an item shorter than 128 bytes
            length = raw[position]
            position += 1
            if position + length > end:
                return None
            items.append(raw[position : position + length])
            position += length
            continue
        length, shift = 0, 0
        while True:
            if position >= end or shift > 28:
                return None
            byte = raw[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if position + length > end:
            return None
        items.append(raw[position : position + length])
        position += length
    return items
