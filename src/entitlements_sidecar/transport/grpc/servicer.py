"""The EntitlementService servicer: coroutines run on the event loop (see `loop_bridge`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import grpc

from entitlements_sidecar import tracing
from entitlements_sidecar.domain.errors import EntitlementsError, InvalidArgumentError
from entitlements_sidecar.domain.ports import Change, ChangeKind, EntitlementStore
from entitlements_sidecar.domain.queries import ConsistencyMode, Subject, SubjectKind
from entitlements_sidecar.domain.service import EntitlementReader, EntitlementView
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.metrics import Metrics
from entitlements_sidecar.transport.grpc import mapping
from entitlements_sidecar.transport.grpc.loop_bridge import AbortContext, RpcAbort
from entitlements_sidecar.transport.grpc.usage_mapping import EntitlementUsage
from entitlements_sidecar.transport.wire import grpc_status


class EntitlementServicer:
    def __init__(
        self,
        service: EntitlementReader,
        store: EntitlementStore,
        max_batch_size: int,
        max_watch_subjects: int,
        metrics: Metrics,
        usage: EntitlementUsage,
        warm_batches: bool = False,
    ) -> None:
        """`warm_batches`: read a batch's subscriptions in one store call first (only worth it when the store
        keeps what it reads: its checks then hit the cache instead of making a round trip each)."""
        self._metrics = metrics
        self._warm_batches = warm_batches
        self._usage = usage
        self._service = service
        self._store = store
        self.max_batch_size = max_batch_size
        self._max_watch_subjects = max_watch_subjects
        self._closing = False
        self._watching: set[asyncio.Queue[Subject | None]] = set()  # each open Watch's queue of changes
        self.calls = self._metrics.calls  # calls served (logged at shutdown) and checks by reason

    def begin_shutdown(self) -> None:
        """End open Watch streams (with UNAVAILABLE, so clients reconnect elsewhere or later)."""
        self._closing = True
        for changed in self._watching:
            changed.put_nowait(None)  # None: the server is stopping

    async def CheckEntitlement(
        self,
        request: pb.CheckEntitlementRequest,
        context: AbortContext,
    ) -> pb.CheckEntitlementResponse:
        try:
            with self._metrics.timer(), tracing.span("CheckEntitlement", feature=request.feature_code):
                query = mapping.check_query_from_proto(request)
                self._usage.validate(request)
                answer = await self._service.check(query)
                response = mapping.check_answer_to_proto(answer)
                await self._usage.apply(request, response)
            self._count(response)
            self.calls.served("CheckEntitlement")
            return response
        except Exception as exc:
            await context.abort(*grpc_status(exc))

    async def CheckEntitlements(
        self,
        request: pb.CheckEntitlementsRequest,
        context: AbortContext,
    ) -> pb.CheckEntitlementsResponse:
        if len(request.checks) > self.max_batch_size:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"checks: {len(request.checks)} items is more than the limit of {self.max_batch_size}",
            )
        await self.warm(request.checks)
        response = pb.CheckEntitlementsResponse()
        for index, check in enumerate(request.checks):
            response.results.append(await self.check_item(check, index))
        self.calls.served("CheckEntitlements")
        return response

    async def warm(self, checks: Sequence[pb.CheckEntitlementRequest]) -> None:
        """Before a batch's checks: read the subscriptions of its valid, cached-consistency items in one store
        call, so each check then hits the cache (when `warm_batches`; a no-op otherwise)."""
        if not self._warm_batches or len(checks) < 2:
            return
        ids: dict[str, None] = {}
        for check in checks:
            with contextlib.suppress(EntitlementsError):  # an invalid item is refused by its own check
                query = mapping.check_query_from_proto(check)
                if query.subject.kind is SubjectKind.SUBSCRIPTION and query.consistency.mode is ConsistencyMode.CACHED:
                    ids[query.subject.id] = None
        if len(ids) > 1:
            # A failure here is the items' to report: each one reads again and answers or fails alone.
            with contextlib.suppress(EntitlementsError):
                await self._store.get_subscriptions(list(ids))

    async def check_item(self, check: pb.CheckEntitlementRequest, index: int) -> pb.CheckEntitlementsResult:
        """One batch item: its answer, or its own error (a bad item never fails the batch)."""
        try:
            query = mapping.check_query_from_proto(check, f"checks[{index}].")
            self._usage.validate(check, f"checks[{index}].")
            with self._metrics.timer(), tracing.span("CheckEntitlements item", feature=check.feature_code):
                answer = await self._service.check(query)
                response = mapping.check_answer_to_proto(answer)
                await self._usage.apply(check, response)
            self._count(response)
            return pb.CheckEntitlementsResult(response=response)
        except Exception as exc:
            return pb.CheckEntitlementsResult(error=mapping.item_error(exc))

    async def GetEntitlements(
        self,
        request: pb.GetEntitlementsRequest,
        context: AbortContext,
    ) -> pb.GetEntitlementsResponse:
        try:
            subject = Subject.of(request.subscription_id, request.customer_id)
            consistency = mapping.consistency_from_proto(request.consistency)
            with tracing.span("GetEntitlements"):
                view = await self._service.get(subject, consistency)
            got = pb.GetEntitlementsResponse(entitlements=await self._entitlements(view))
            self.calls.served("GetEntitlements")
            return got
        except Exception as exc:
            await context.abort(*grpc_status(exc))

    async def WatchEntitlements(
        self,
        request: pb.WatchEntitlementsRequest,
        context: AbortContext,
    ) -> AsyncIterator[pb.WatchEntitlementsResponse]:
        try:
            subjects = self._watch_subjects(request)
            heartbeat = _heartbeat_seconds(request)
        except Exception as exc:
            await context.abort(*grpc_status(exc))
        changed: asyncio.Queue[Subject | None] = asyncio.Queue()
        pending: set[Subject] = set()

        def on_change(change: Change) -> None:
            # Runs on the event loop; only queue here, reads happen in the stream below.
            for subject in _affected(subjects, change):
                if subject not in pending:
                    pending.add(subject)
                    changed.put_nowait(subject)

        self.calls.served("WatchEntitlements")
        remove = self._store.add_listener(on_change)  # before the first read, so no change is missed
        self._watching.add(changed)
        if self._closing:
            changed.put_nowait(None)
        try:
            # What each subject's last message said; staleness is part of it, so a stream whose sidecar lost
            # its change feed says so (and says so again when the feed is back), though no version moved.
            seen: dict[Subject, tuple[bool, int, bool]] = {}
            for subject in subjects:
                view = await self._service.get(subject)
                seen[subject] = (view.found, view.freshness.version, view.freshness.stale)
                yield pb.WatchEntitlementsResponse(entitlements=await self._entitlements(view), initial=True)
            loop = asyncio.get_running_loop()
            last_sent = loop.time()
            while True:
                quiet_for = None if heartbeat is None else max(0.0, last_sent + heartbeat - loop.time())
                next_subject = await _next(changed, quiet_for)
                if isinstance(next_subject, _Quiet):
                    yield _HEARTBEAT
                    last_sent = loop.time()
                    continue
                if next_subject is None:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "server shutting down; reconnect")
                    return
                subject = next_subject
                pending.discard(subject)
                view = await self._service.get(subject)
                state = (view.found, view.freshness.version, view.freshness.stale)
                if seen.get(subject) == state:
                    continue  # coalesced or repeated notification: nothing new to tell
                seen[subject] = state
                yield pb.WatchEntitlementsResponse(entitlements=await self._entitlements(view), initial=False)
                last_sent = loop.time()
        except RpcAbort:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await context.abort(*grpc_status(exc))
        finally:
            remove()
            self._watching.discard(changed)

    async def _entitlements(self, view: EntitlementView) -> pb.EntitlementSet:
        entitlements = mapping.view_to_proto(view)
        await self._usage.annotate(entitlements)
        return entitlements

    def _count(self, response: pb.CheckEntitlementResponse) -> None:
        self._metrics.count_check(response.allowed, pb.Reason.Name(response.reason))

    def _watch_subjects(self, request: pb.WatchEntitlementsRequest) -> list[Subject]:
        if not request.subjects:
            raise InvalidArgumentError("subjects", "at least one subject is required")
        if len(request.subjects) > self._max_watch_subjects:
            raise InvalidArgumentError(
                "subjects", f"{len(request.subjects)} subjects is more than the limit of {self._max_watch_subjects}"
            )
        subjects: list[Subject] = []
        for index, item in enumerate(request.subjects):
            subject = Subject.of(item.subscription_id, item.customer_id, f"subjects[{index}].")
            if subject not in subjects:
                subjects.append(subject)
        return subjects


async def _next(changed: asyncio.Queue[Subject | None], quiet_for: float | None) -> Subject | _Quiet | None:
    """The next subject to re-read; None when the server is stopping; _QUIET after `quiet_for` s of neither."""
    try:
        async with asyncio.timeout(quiet_for):  # a timer, not a task: a heartbeat is one wake-up
            return await changed.get()
    except TimeoutError:
        return _QUIET


class _Quiet:
    """The stream was quiet for its heartbeat interval."""


_QUIET = _Quiet()
_HEARTBEAT = pb.WatchEntitlementsResponse(heartbeat=True)
# A heartbeat is a wake-up and a message per stream: faster than twice a second is a client's mistake;
# slower than a minute would not tell a stopped sidecar from a quiet one in useful time.
_HEARTBEAT_SECONDS = (0.5, 60.0)


def _heartbeat_seconds(request: pb.WatchEntitlementsRequest) -> float | None:
    if not request.HasField("heartbeat_interval"):
        return None
    interval = request.heartbeat_interval
    seconds = interval.seconds + interval.nanos / 1e9
    low, high = _HEARTBEAT_SECONDS
    if not low <= seconds <= high:
        raise InvalidArgumentError("heartbeat_interval", f"{seconds:g} s is outside {low:g} s to {high:g} s")
    return seconds


def _affected(subjects: list[Subject], change: Change) -> list[Subject]:
    if change.kind in (ChangeKind.FEED_LOST, ChangeKind.FEED_RESET, ChangeKind.PLAN, ChangeKind.FEATURES):
        # Changes may be missed from now on, or may have been missed, or a part every answer is composed
        # with changed: re-read them all (a watch has a bounded number of subjects; those whose state did
        # not move send nothing).
        return list(subjects)
    if change.kind is ChangeKind.SUBSCRIPTION:
        return [s for s in subjects if s.kind is SubjectKind.SUBSCRIPTION and s.id == change.id]
    if change.kind is ChangeKind.CUSTOMER:
        return [s for s in subjects if s.kind is SubjectKind.CUSTOMER and s.id == change.id]
    return []
