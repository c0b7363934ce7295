"""A Python client for applications: typed `check`, `check_many` and `get` over one reused channel,
with deadlines, in a blocking and an asyncio flavour.

`watch([...])` keeps a local copy of the named subjects' entitlements, fed by `WatchEntitlements`;
checks on those subjects are then answered in-process, without an RPC, by the same rules the
sidecar applies (`domain/check.py`), until the stream breaks (then checks go to the sidecar again).
The stream carries heartbeats: when nothing has come for three intervals (a frozen sidecar, a cut
network), local answers say `stale=True` until it speaks again.
A check with a `requested_usage` (a metered feature) always asks the sidecar: usage is live.

    client = EntitlementsClient("127.0.0.1:50051")
    if client.check(subscription_id="sub_1", feature="seats", privilege="max", quantity=20).allowed: ...
    if client.consume("api", "sub_1", 1, transaction_id=request_id).recorded: ...
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from entitlements_sidecar.client_local import HEARTBEAT_SECONDS, SILENT_BEATS, LocalCache, decide_locally, well_formed
from entitlements_sidecar.client_types import Check, CheckError, CheckResult, PrivilegeValue, value_of
from entitlements_sidecar.client_usage import (
    ConsumeResult,
    UsageInfo,
    consume_request,
    consume_result,
    usage_from_proto,
)
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.gen.entitlements.v1 import usage_pb2_grpc as upb_grpc

# The sidecar is next door and restarts in about a second; grpc's default reconnect backoff grows to two
# minutes, and its minimum connect time is 20 s, which would keep an application failing long after its
# sidecar is back: retry every 100 ms, at most 500 ms apart. Keepalive pings find a sidecar that stopped
# answering (within the 5 s the sidecar allows between client pings).
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
)
_WATCH_RETRY_SECONDS = (0.05, 0.1, 0.2, 0.4)  # re-opening a broken Watch, capped at the last

__all__ = [
    "AsyncEntitlementsClient",
    "Check",
    "CheckError",
    "CheckResult",
    "ConsumeResult",
    "EntitlementsClient",
    "PrivilegeValue",
    "UsageInfo",
    "decide_locally",
    "well_formed",
]


def _name(enum: Any, number: int, prefix: str) -> str:
    return str(enum.Name(number)).removeprefix(prefix).lower()


def result_from_proto(response: pb.CheckEntitlementResponse) -> CheckResult:
    return CheckResult(
        allowed=response.allowed,
        reason=_name(pb.Reason, response.reason, "REASON_"),
        value=value_of(response.value) if response.HasField("value") else None,
        subscription_id=response.subscription_id,
        version=response.freshness.version,
        source=_name(pb.Source, response.freshness.source, "SOURCE_"),
        stale=response.freshness.stale,
        usage=usage_from_proto(response.usage) if response.HasField("usage") else None,
    )


class EntitlementsClient:
    """Blocking client. One channel for the client's lifetime; `timeout` is each call's deadline."""

    def __init__(
        self,
        target: str,
        timeout: float = 0.25,
        channel: grpc.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        local_answers: int = 10_000,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        """`credentials`: grpc.ssl_channel_credentials(...) for a sidecar serving TLS (or mutual TLS).
        `local_answers`: how many answers about watched subjects are memoized (0: none).
        `heartbeat_seconds`: the Watch's heartbeat interval (0.5 to 60); local answers are marked stale
        after SILENT_BEATS intervals without a word from the stream."""
        self._channel = channel or _channel(target, credentials)
        self._stub = pb_grpc.EntitlementServiceStub(self._channel)
        self._usage = upb_grpc.UsageServiceStub(self._channel)
        self._timeout = timeout
        self._heartbeat = Duration(nanos=round(heartbeat_seconds % 1 * 1e9), seconds=int(heartbeat_seconds))
        self._local = LocalCache(local_answers, heartbeat_seconds * SILENT_BEATS)
        self._watch: Any = None  # the one Watch stream, over every subject watch() was given
        self._subjects: list[pb.Subject] = []
        self._swap = threading.Lock()  # replacing the stream and applying its messages
        self._adding = threading.Lock()  # watch() calls, one at a time
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()
        if self._watch is not None:
            self._watch.cancel()
        self._channel.close()

    def __enter__(self) -> EntitlementsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(
        self,
        feature: str,
        subscription_id: str = "",
        customer_id: str = "",
        privilege: str = "",
        quantity: int | None = None,
        value: str | None = None,
        requested_usage: int | None = None,
    ) -> CheckResult:
        """Raises grpc.RpcError (INVALID_ARGUMENT names the field) on a bad request."""
        check = Check(feature, subscription_id, customer_id, privilege, quantity, value, requested_usage)
        local = self._local.lookup(check)
        if local is not None:
            return local
        return result_from_proto(self._stub.CheckEntitlement(check.request(), timeout=self._timeout))

    def consume(self, feature: str, subscription_id: str, value: int, transaction_id: str) -> ConsumeResult:
        """Use `value` units of a metered feature if the quota allows, in one atomic step on the sidecar;
        a retry with the same `transaction_id` is not counted again."""
        request = consume_request(feature, subscription_id, value, transaction_id)
        return consume_result(self._usage.ConsumeUsage(request, timeout=self._timeout))

    def check_many(self, checks: Sequence[Check]) -> list[CheckResult | CheckError]:
        request = pb.CheckEntitlementsRequest(checks=[c.request() for c in checks])
        response = self._stub.CheckEntitlements(request, timeout=self._timeout)
        return [_item(r) for r in response.results]

    def get(self, subscription_id: str = "", customer_id: str = "") -> pb.EntitlementSet:
        request = pb.GetEntitlementsRequest(subscription_id=subscription_id, customer_id=customer_id)
        return self._stub.GetEntitlements(request, timeout=self._timeout).entitlements

    def watch(self, subscription_ids: Iterable[str] = (), customer_ids: Iterable[str] = ()) -> None:
        """Keep the named subjects locally; returns once their current state has arrived (a subject named
        twice counts once). A later call adds its subjects: the client keeps one stream, re-opened with
        every subject so far (within the sidecar's ENTITLEMENTS_MAX_WATCH_SUBJECTS, else INVALID_ARGUMENT
        and the subjects watched before stay as they were).

        If the stream ends (the sidecar restarts), checks go to the sidecar again at once, and the
        stream is re-opened in the background (every 50 ms, backing off to 400 ms), which brings the
        local copy back to the sidecar's current state."""
        asked = [pb.Subject(subscription_id=s) for s in dict.fromkeys(subscription_ids)]
        asked += [pb.Subject(customer_id=c) for c in dict.fromkeys(customer_ids)]
        with self._adding:  # two threads' calls in turn: each builds on the subjects the other added
            watched = {(s.subscription_id, s.customer_id) for s in self._subjects}
            added = [s for s in asked if (s.subscription_id, s.customer_id) not in watched]
            if not added:
                return
            subjects = [*self._subjects, *added]
            stream, initial = self._open(subjects, wait=False)
            with self._swap:
                replaced, self._watch, self._subjects = self._watch, stream, subjects
                for state in initial:
                    self._local.update(state)
        if replaced is not None:
            replaced.cancel()  # its follower moves on to the new stream, and what it still reads is ignored
        else:
            threading.Thread(target=self._follow, name="entitlements-watch", daemon=True).start()

    def _open(self, subjects: list[pb.Subject], wait: bool = True) -> tuple[Any, list[pb.EntitlementSet]]:
        """A new stream and each subject's initial state, not applied yet: they replace the local copy
        together with the stream (under `_swap`), so a replaced stream's late message cannot land after
        them."""
        # wait: a re-open waits for a restarting sidecar (the stream starts as soon as the channel is back),
        # where the first watch() fails at once so that the application knows.
        request = pb.WatchEntitlementsRequest(subjects=subjects, heartbeat_interval=self._heartbeat)
        stream = self._stub.WatchEntitlements(request, wait_for_ready=wait)
        waiting = {(s.subscription_id, s.customer_id) for s in subjects}
        initial: list[pb.EntitlementSet] = []
        try:
            while waiting:  # each subject's initial state, in whatever order they come
                message = next(stream)
                if not message.heartbeat:
                    initial.append(message.entitlements)
                    subject = message.entitlements.subject
                    waiting.discard((subject.subscription_id, subject.customer_id))
        except BaseException:
            stream.cancel()
            raise
        return stream, initial

    def _follow(self) -> None:
        while not self._closed.is_set():
            stream = self._watch
            try:
                for message in stream:
                    if message.heartbeat:
                        self._local.heard()
                        continue
                    with self._swap:
                        if stream is not self._watch:
                            break  # replaced by watch(): its stream has every subject
                        self._local.update(message.entitlements)
            except grpc.RpcError:
                pass
            with self._swap:
                if stream is not self._watch:
                    continue
                self._local.clear()  # the stream ended: answers could go stale, so ask the sidecar again
            self._reopen(stream)

    def _reopen(self, broken: Any) -> None:
        attempt = 0
        while not self._closed.wait(_WATCH_RETRY_SECONDS[min(attempt, len(_WATCH_RETRY_SECONDS) - 1)]):
            try:
                stream, initial = self._open(self._subjects)
            except (grpc.RpcError, ValueError, StopIteration):  # ValueError: the channel was closed meanwhile
                attempt += 1
                continue
            with self._swap:
                if self._watch is broken:
                    self._watch = stream
                    for state in initial:
                        self._local.update(state)
                    return
            stream.cancel()  # watch() opened one with more subjects meanwhile
            return


class AsyncEntitlementsClient:
    """The asyncio flavour of EntitlementsClient (no local cache)."""

    def __init__(self, target: str, timeout: float = 0.25, credentials: grpc.ChannelCredentials | None = None) -> None:
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.EntitlementServiceStub(self._channel)
        self._usage = upb_grpc.UsageServiceStub(self._channel)
        self._timeout = timeout

    async def close(self) -> None:
        await self._channel.close()

    async def check(
        self,
        feature: str,
        subscription_id: str = "",
        customer_id: str = "",
        privilege: str = "",
        quantity: int | None = None,
        value: str | None = None,
        requested_usage: int | None = None,
    ) -> CheckResult:
        check = Check(feature, subscription_id, customer_id, privilege, quantity, value, requested_usage)
        return result_from_proto(await self._stub.CheckEntitlement(check.request(), timeout=self._timeout))

    async def consume(self, feature: str, subscription_id: str, value: int, transaction_id: str) -> ConsumeResult:
        request = consume_request(feature, subscription_id, value, transaction_id)
        return consume_result(await self._usage.ConsumeUsage(request, timeout=self._timeout))

    async def check_many(self, checks: Sequence[Check]) -> list[CheckResult | CheckError]:
        request = pb.CheckEntitlementsRequest(checks=[c.request() for c in checks])
        response = await self._stub.CheckEntitlements(request, timeout=self._timeout)
        return [_item(r) for r in response.results]

    async def get(self, subscription_id: str = "", customer_id: str = "") -> pb.EntitlementSet:
        request = pb.GetEntitlementsRequest(subscription_id=subscription_id, customer_id=customer_id)
        return (await self._stub.GetEntitlements(request, timeout=self._timeout)).entitlements


def _channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)


def _item(result: pb.CheckEntitlementsResult) -> CheckResult | CheckError:
    if result.WhichOneof("outcome") == "error":
        return CheckError(result.error.code, result.error.message, result.error.field)
    return result_from_proto(result.response)
