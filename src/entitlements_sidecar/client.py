"""A Python client for applications: typed `check`, `check_many` and `get` over one reused channel,
with deadlines, in a blocking and an asyncio flavour.

`watch([...])` keeps a local copy of the named subjects' entitlements, fed by `WatchEntitlements`;
checks on those subjects are then answered in-process, without an RPC, by the same rules the
sidecar applies (`domain/check.py`), until the stream breaks (then checks go to the sidecar again).
A check with a `requested_usage` (a metered feature) always asks the sidecar: usage is live.

    client = EntitlementsClient("127.0.0.1:50051")
    if client.check(subscription_id="sub_1", feature="seats", privilege="max", quantity=20).allowed: ...
    if client.consume("api", "sub_1", 1, transaction_id=request_id).recorded: ...
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

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
_MAX_ID_LENGTH = 255  # the longest id, code or value the sidecar takes (Lago caps codes at 255)

PrivilegeValue = bool | int | str | None


@dataclass(frozen=True, slots=True)
class CheckResult:
    allowed: bool
    reason: str  # "entitled", "quantity_exceeds_limit", ... (the proto enum without its prefix, lower case)
    value: PrivilegeValue = None
    subscription_id: str = ""
    version: int = 0
    source: str = ""  # "memory", "redis", "source", "fallback", or "local" for a watched subject
    stale: bool = False
    usage: UsageInfo | None = None  # with requested_usage: the metered feature's usage


@dataclass(frozen=True, slots=True)
class CheckError:
    code: int
    message: str
    field: str


@dataclass(frozen=True, slots=True)
class Check:
    feature: str
    subscription_id: str = ""
    customer_id: str = ""
    privilege: str = ""
    quantity: int | None = None
    value: str | None = None
    requested_usage: int | None = None

    def request(self) -> pb.CheckEntitlementRequest:
        request = pb.CheckEntitlementRequest(
            subscription_id=self.subscription_id,
            customer_id=self.customer_id,
            feature_code=self.feature,
            privilege_code=self.privilege,
        )
        if self.quantity is not None:
            request.quantity = self.quantity
        if self.value is not None:
            request.value = self.value
        if self.requested_usage is not None:
            request.requested_usage = self.requested_usage
        return request


def _name(enum: Any, number: int, prefix: str) -> str:
    return str(enum.Name(number)).removeprefix(prefix).lower()


def _value(message: pb.Value) -> PrivilegeValue:
    kind = message.WhichOneof("kind")
    return getattr(message, kind) if kind else None


def result_from_proto(response: pb.CheckEntitlementResponse) -> CheckResult:
    return CheckResult(
        allowed=response.allowed,
        reason=_name(pb.Reason, response.reason, "REASON_"),
        value=_value(response.value) if response.HasField("value") else None,
        subscription_id=response.subscription_id,
        version=response.freshness.version,
        source=_name(pb.Source, response.freshness.source, "SOURCE_"),
        stale=response.freshness.stale,
        usage=usage_from_proto(response.usage) if response.HasField("usage") else None,
    )


def well_formed(check: Check) -> bool:
    """Whether the sidecar would take the check rather than answer INVALID_ARGUMENT (its rules are
    domain/queries.py and domain/ids.py, which a client does not import; the conformance vectors hold the
    two to the same answers)."""
    if bool(check.subscription_id) == bool(check.customer_id):
        return False
    if check.subscription_id and (not _valid_id(check.subscription_id) or "/" in check.subscription_id):
        return False
    if check.customer_id and not _valid_id(check.customer_id):
        return False
    if not _valid_id(check.feature) or (check.privilege and not _valid_id(check.privilege)):
        return False
    if check.quantity is not None and (check.value is not None or check.quantity < 0):
        return False
    if check.value is not None and len(check.value) > _MAX_ID_LENGTH:
        return False
    return (check.quantity is None and check.value is None) or bool(check.privilege)


def _valid_id(value: str) -> bool:
    return (
        0 < len(value) <= _MAX_ID_LENGTH
        and value == value.strip()
        and value not in (".", "..")
        and not any(unicodedata.category(char) == "Cc" for char in value)
    )


def decide_locally(state: pb.EntitlementSet, check: Check) -> CheckResult:
    """The sidecar's check rules applied to a watched subject's entitlements."""
    version = state.freshness.version

    def answer(allowed: bool, reason: str, value: PrivilegeValue = None, sub: str = "") -> CheckResult:
        return CheckResult(allowed, reason, value, sub, version, "local", state.freshness.stale)

    customer = bool(check.customer_id)
    own = "" if customer else check.subscription_id  # a subscription subject is named in every answer
    if not state.found:
        return answer(False, "customer_not_found" if customer else "subscription_not_found")
    if not any(s.status == "active" for s in state.subscriptions):
        return answer(False, "no_active_subscription" if customer else "subscription_not_active", sub=own)
    feature = next((f for f in state.features if f.code == check.feature), None)
    if feature is None:
        return answer(False, "feature_not_entitled", sub=own)
    if not check.privilege:
        return answer(True, "entitled", sub=feature.subscription_id)
    privilege = next((p for p in feature.privileges if p.code == check.privilege), None)
    if privilege is None:
        return answer(False, "privilege_not_found", sub=feature.subscription_id)
    value, sub = _value(privilege.value), privilege.subscription_id
    if privilege.value_type == pb.VALUE_TYPE_INTEGER:
        if check.value is not None:
            return answer(False, "request_type_mismatch", value, sub)
        over = check.quantity is not None and isinstance(value, int) and check.quantity > value
        return answer(not over, "quantity_exceeds_limit" if over else "entitled", value, sub)
    if privilege.value_type == pb.VALUE_TYPE_BOOLEAN:
        if check.quantity is not None or check.value is not None:
            return answer(False, "request_type_mismatch", value, sub)
        return answer(value is True, "entitled" if value is True else "privilege_false", value, sub)
    if check.quantity is not None:
        return answer(False, "request_type_mismatch", value, sub)
    if check.value is not None and check.value != value:
        return answer(False, "value_mismatch", value, sub)
    return answer(True, "entitled", value, sub)


class _LocalCache:
    """Watched subjects' entitlements and memoized answers; shared by the watcher and callers.

    The memo holds at most `max_answers` answers (then it starts over: refilling costs one local
    evaluation per question). Callers read without the lock: every update replaces the memo, and an
    answer computed from an older state goes into the memo that update replaced, never the new one."""

    def __init__(self, max_answers: int = 10_000) -> None:
        self._states: dict[tuple[str, str], pb.EntitlementSet] = {}
        self._answers: dict[Check, CheckResult] = {}
        self._max_answers = max_answers
        self._lock = threading.Lock()

    def lookup(self, check: Check) -> CheckResult | None:
        if check.requested_usage is not None:
            return None  # usage is live: only the sidecar can answer
        answers = self._answers  # before the state: see the class comment
        answer = answers.get(check)
        if answer is not None:
            return answer
        state = self._states.get((check.subscription_id, check.customer_id))
        if state is None or not well_formed(check):
            return None  # a malformed check goes to the sidecar, whose INVALID_ARGUMENT names the field
        answer = decide_locally(state, check)
        if self._max_answers > 0:
            if len(answers) >= self._max_answers:
                answers.clear()
            answers[check] = answer
        return answer

    def update(self, state: pb.EntitlementSet) -> None:
        with self._lock:
            self._states[(state.subject.subscription_id, state.subject.customer_id)] = state
            self._answers = {}

    def clear(self) -> None:
        with self._lock:
            self._states = {}
            self._answers = {}

    def __len__(self) -> int:
        return len(self._answers)


class EntitlementsClient:
    """Blocking client. One channel for the client's lifetime; `timeout` is each call's deadline."""

    def __init__(
        self,
        target: str,
        timeout: float = 0.25,
        channel: grpc.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        local_answers: int = 10_000,
    ) -> None:
        """`credentials`: grpc.ssl_channel_credentials(...) for a sidecar serving TLS (or mutual TLS).
        `local_answers`: how many answers about watched subjects are memoized (0: none)."""
        self._channel = channel or _channel(target, credentials)
        self._stub = pb_grpc.EntitlementServiceStub(self._channel)
        self._usage = upb_grpc.UsageServiceStub(self._channel)
        self._timeout = timeout
        self._local = _LocalCache(local_answers)
        self._watch: Any = None
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
        twice counts once).

        If the stream ends (the sidecar restarts), checks go to the sidecar again at once, and the
        stream is re-opened in the background (every 50 ms, backing off to 400 ms), which brings the
        local copy back to the sidecar's current state."""
        subjects = [pb.Subject(subscription_id=s) for s in dict.fromkeys(subscription_ids)]
        subjects += [pb.Subject(customer_id=c) for c in dict.fromkeys(customer_ids)]
        self._watch = self._open(subjects, wait=False)
        threading.Thread(target=self._follow, args=(subjects,), name="entitlements-watch", daemon=True).start()

    def _open(self, subjects: list[pb.Subject], wait: bool = True) -> Any:
        # wait: a re-open waits for a restarting sidecar (the stream starts as soon as the channel is back),
        # where the first watch() fails at once so that the application knows.
        stream = self._stub.WatchEntitlements(pb.WatchEntitlementsRequest(subjects=subjects), wait_for_ready=wait)
        waiting = {(s.subscription_id, s.customer_id) for s in subjects}
        while waiting:  # each subject's initial state, in whatever order they come
            entitlements = next(stream).entitlements
            self._local.update(entitlements)
            waiting.discard((entitlements.subject.subscription_id, entitlements.subject.customer_id))
        return stream

    def _follow(self, subjects: list[pb.Subject]) -> None:
        while not self._closed.is_set():
            try:
                for message in self._watch:
                    self._local.update(message.entitlements)
            except grpc.RpcError:
                pass
            self._local.clear()  # the stream ended: answers could go stale, so ask the sidecar again
            attempt = 0
            while not self._closed.wait(_WATCH_RETRY_SECONDS[min(attempt, len(_WATCH_RETRY_SECONDS) - 1)]):
                try:
                    self._watch = self._open(subjects)
                    break
                except (grpc.RpcError, ValueError, StopIteration):  # ValueError: the channel was closed meanwhile
                    self._local.clear()
                    attempt += 1


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
