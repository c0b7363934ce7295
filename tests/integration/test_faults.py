"""Faults with real processes: Redis killed under load, and a sidecar restarted under open streams.
(Lago returning 503, a syncer killed before acknowledging, and duplicate webhooks are in lago/.)"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from pathlib import Path

import grpc
import httpx
import pytest

from entitlements_sidecar.client import EntitlementsClient
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.support.processes import REPO, RedisServer, Sidecar, free_port, start_sidecar
from tests.support.wait import eventually, holds_for

pytestmark = pytest.mark.integration

MAX_SEATS = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="seats", privilege_code="max")
GLOBEX = pb.CheckEntitlementRequest(subscription_id="sub_globex", feature_code="sso")


def _bump(catalog: Path, old: str, new: str) -> None:
    catalog.write_text(catalog.read_text().replace(old, new))
    stat = catalog.stat()
    os.utime(catalog, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


class Load:
    """Checks of L1-warm subjects in a loop; every failure and every stale answer is recorded."""

    def __init__(self, sidecar: Sidecar) -> None:
        self._stub = stub(sidecar)
        self.failures: list[str] = []
        self.stale = 0
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for request in (MAX_SEATS, GLOBEX):
                try:
                    answer = self._stub.CheckEntitlement(request, timeout=2)
                except grpc.RpcError as error:
                    self.failures.append(f"{error.code().name}: {error.details()}")
                    continue
                self.answers += 1
                self.stale += answer.freshness.stale
            self._stop.wait(0.005)  # pacing, not waiting for an effect

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_redis_killed_while_checks_run(tmp_path: Path, example_catalog: Path, own_redis: RedisServer) -> None:
    args = ["--store", "redis", "--redis-url", own_redis.url, "--redis-timeout-seconds", "0.5"]
    writer = start_sidecar(tmp_path, example_catalog, args, name="writer")
    # The reader never re-reads its catalog file (poll once an hour): the edit below can reach it only through
    # the writer's write to Redis and its invalidation, not through a write of its own.
    reader_args = [*args, "--failure-policy-features", "sso=fail_open", "--catalog-poll-seconds", "3600"]
    reader = start_sidecar(tmp_path, example_catalog, reader_args, name="reader")
    try:
        for request in (MAX_SEATS, GLOBEX):  # into the reader's L1
            source = lambda r=request: stub(reader).CheckEntitlement(r, timeout=5).freshness.source  # noqa: E731
            eventually(lambda s=source: s() == pb.SOURCE_MEMORY, what="an L1 hit")  # type: ignore[misc]
        own_redis.client().save()  # so the restarted Redis has the map (as a persistent Redis would)
        load = Load(reader)
        own_redis.kill()
        eventually(lambda: load.stale > 0, timeout=10, what="answers marked stale while Redis is down")
        # Subjects not in the L1 get the failure policy's answer: the default (last known good, and nothing
        # is known about this one, so closed), and fail_open for sso; said to be fallbacks either way.
        cold = pb.CheckEntitlementRequest(subscription_id="sub_initech_next", feature_code="seats")
        for request, allowed in ((cold, False), (pb.CheckEntitlementRequest(subscription_id="sub_initech_next",
                                                                          feature_code="sso"), True)):  # fmt: skip
            answer = stub(reader).CheckEntitlement(request, timeout=5)
            assert (answer.allowed, answer.reason) == (allowed, pb.REASON_FAILURE_POLICY)
            assert answer.freshness.source == pb.SOURCE_FALLBACK and answer.freshness.stale
        _bump(example_catalog, "seats: {max: 25}", "seats: {max: 27}")  # cannot be written yet
        # Redis stays down a while longer, with checks and the writer's retries going on.
        holds_for(lambda: load.failures == [], seconds=0.5, what="no failed check while Redis is down")
        own_redis.restart()
        eventually(
            lambda: stub(reader).CheckEntitlement(MAX_SEATS, timeout=5).value.int_value == 27,
            timeout=20,
            what="the reader caught up without a restart",
        )
        eventually(
            lambda: not stub(reader).CheckEntitlement(MAX_SEATS, timeout=5).freshness.stale,
            what="fresh answers again",
        )
        load.stop()
        assert load.failures == [] and load.answers > 100
        assert reader.process.poll() is None and writer.process.poll() is None
    finally:
        reader.terminate()
        writer.terminate()


def test_a_watch_says_its_answers_are_stale_while_redis_is_down(
    tmp_path: Path, example_catalog: Path, own_redis: RedisServer
) -> None:
    args = ["--store", "redis", "--redis-url", own_redis.url, "--redis-timeout-seconds", "0.5"]
    sidecar = start_sidecar(tmp_path, example_catalog, args)
    client = EntitlementsClient(sidecar.address, timeout=2)
    messages: list[pb.WatchEntitlementsResponse] = []
    request = pb.WatchEntitlementsRequest(subjects=[pb.Subject(subscription_id="sub_acme_main")])
    stream = stub(sidecar).WatchEntitlements(request, timeout=60)

    def collect() -> None:
        with contextlib.suppress(grpc.RpcError):
            messages.extend(stream)

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    try:
        client.watch(subscription_ids=["sub_acme_main"])
        local = client.check("seats", subscription_id="sub_acme_main", privilege="max")
        assert (local.source, local.value, local.stale) == ("local", 25, False)
        eventually(lambda: len(messages) == 1, what="the raw stream's initial state")
        own_redis.client().save()
        own_redis.kill()
        # Nothing changed, yet the sidecar can no longer hear of changes: both streams say so.
        eventually(lambda: any(m.entitlements.freshness.stale for m in messages), timeout=10, what="a stale message")
        eventually(
            lambda: client.check("seats", subscription_id="sub_acme_main", privilege="max").stale,
            timeout=10,
            what="the client's local answer marked stale",
        )
        own_redis.restart()
        eventually(lambda: not messages[-1].entitlements.freshness.stale, timeout=20, what="fresh again")
        back = client.check("seats", subscription_id="sub_acme_main", privilege="max")
        eventually(lambda: not client.check("seats", subscription_id="sub_acme_main", privilege="max").stale,
                   what="the client's local answer fresh again")  # fmt: skip
        assert back.value == 25 and all(m.entitlements.found for m in messages)
    finally:
        stream.cancel()
        client.close()
        sidecar.terminate()


def test_sidecar_restarted_under_open_watch_and_event_streams(tmp_path: Path, example_catalog: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    sidecar = start_sidecar(tmp_path, example_catalog, address=address)
    client = EntitlementsClient(address, timeout=1)
    interop = REPO / ".tools" / "openfeature-py" / "bin" / "python"
    provider = subprocess.Popen(
        [str(interop), str(REPO / "tests" / "interop" / "openfeature_reconnect.py"), *address.rsplit(":", 1)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )  # fmt: skip
    assert provider.stdout is not None
    try:
        client.watch(subscription_ids=["sub_acme_main"])
        assert client.check("seats", subscription_id="sub_acme_main", privilege="max").source == "local"
        first = json.loads(_next_json(provider))
        assert first == {"phase": "ready", "max": 25}

        assert sidecar.terminate() == 0
        _bump(example_catalog, "seats: {max: 25}", "seats: {max: 28}")  # changed while it was down
        sidecar = start_sidecar(tmp_path, example_catalog, address=address, name="restarted")

        def local_max() -> object:
            result = client.check("seats", subscription_id="sub_acme_main", privilege="max")
            return result.value if result.source == "local" else None

        eventually(lambda: local_max() == 28, timeout=20, what="the client's Watch re-opened and resynchronised")
        # Both streams re-opened on the new process (the client's Watch and the provider's EventStream) ...
        eventually(lambda: sidecar.open_streams() == 2, timeout=20, what="the provider's event stream back")
        _bump(example_catalog, "seats: {max: 28}", "seats: {max: 29}")  # ... so this reaches both
        assert json.loads(_next_json(provider)) == {"phase": "changed", "max": 29}
        eventually(lambda: local_max() == 29, what="the change through the re-opened Watch")
        assert provider.wait(timeout=20) == 0
    finally:
        client.close()
        if provider.poll() is None:
            provider.kill()
        provider.communicate(timeout=10)
        sidecar.terminate()


def _next_json(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{"):
            return line
        print("provider:", line.rstrip())
    raise AssertionError(f"the provider exited with {process.wait()}")


def test_redis_restarted_empty_gets_the_catalog_written_again(
    tmp_path: Path, example_catalog: Path, own_redis: RedisServer
) -> None:
    args = ["--store", "redis", "--redis-url", own_redis.url, "--redis-timeout-seconds", "0.5"]
    writer = start_sidecar(tmp_path, example_catalog, args, name="writer")
    reader = start_sidecar(tmp_path, example_catalog, args, name="reader")
    known = [pb.CheckEntitlementRequest(subscription_id=s, feature_code="seats") for s in ("sub_globex", "sub_acme_eu")]
    fresh_not_found: list[str] = []
    stop = threading.Event()

    def check_known() -> None:  # none of these is in the reader's L1 after the restart empties it
        while not stop.is_set():
            for request in known:
                try:
                    answer = stub(reader).CheckEntitlement(request, timeout=2)
                except grpc.RpcError:
                    continue
                if answer.reason == pb.REASON_SUBSCRIPTION_NOT_FOUND and not answer.freshness.stale:
                    fresh_not_found.append(request.subscription_id)
            stop.wait(0.005)

    checker = threading.Thread(target=check_known, daemon=True)
    checker.start()
    try:
        own_redis.kill()
        own_redis.restart()  # empty: nothing was saved
        eventually(lambda: own_redis.client().dbsize() > 0, timeout=10, what="the map written again")
        eventually(
            lambda: stub(reader).CheckEntitlement(known[0], timeout=2).reason == pb.REASON_ENTITLED,
            timeout=10,
            what="answers from the rewritten map",
        )
        stop.set()
        checker.join(timeout=10)
        assert fresh_not_found == []
        assert "writing the catalog again" in writer.log() + reader.log()
        eventually(lambda: httpx.get(f"{reader.http_url}/readyz", timeout=5).status_code == 200, what="ready")
    finally:
        stop.set()
        reader.terminate()
        writer.terminate()
