"""The Python client when its sidecar dies and comes back, and with what a caller may get wrong."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from entitlements_sidecar.client import AsyncEntitlementsClient, EntitlementsClient
from tests.support.processes import free_port, start_sidecar
from tests.support.wait import eventually, holds_for

pytestmark = pytest.mark.integration

BACK_WITHIN_SECONDS = 1.0


class Caller:
    """Calls `check` every 10 ms, as a busy application does, and records when calls succeed."""

    def __init__(self, check: object) -> None:
        self._check = check
        self.successes: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._check()  # type: ignore[operator]
                self.successes.append(time.monotonic())
            except grpc.RpcError:
                pass
            self._stop.wait(0.01)

    def back_after(self, moment: float) -> float:
        eventually(lambda: any(t >= moment for t in self.successes), timeout=15, interval=0.01, what="a success")
        return min(t for t in self.successes if t >= moment) - moment

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_clients_are_back_within_a_second_of_a_killed_sidecar_serving_again(
    tmp_path: Path, example_catalog: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    sidecar = start_sidecar(tmp_path, example_catalog, address=address)
    plain, watching = EntitlementsClient(address, timeout=0.5), EntitlementsClient(address, timeout=0.5)
    loop = asyncio.new_event_loop()
    aio = loop.run_until_complete(_async_client(address))
    aio_lock = threading.Lock()

    def aio_check() -> None:
        with aio_lock:
            loop.run_until_complete(aio.check("sso", subscription_id="sub_acme_main"))

    def local_check() -> None:
        if watching.check("sso", subscription_id="sub_acme_main").source != "local":
            raise grpc.RpcError("not local yet")

    callers: list[Caller] = []
    try:
        watching.watch(subscription_ids=["sub_acme_main"])
        callers = [
            Caller(lambda: plain.check("sso", subscription_id="sub_acme_main")),
            Caller(aio_check),
            Caller(local_check),
        ]
        eventually(lambda: all(c.successes for c in callers), what="every caller answered")
        sidecar.process.send_signal(signal.SIGKILL)
        sidecar.process.wait(timeout=10)
        sidecar.channel.close()
        time.sleep(2)  # down for a while, with the callers calling: pacing a fault, not awaiting an effect
        sidecar = start_sidecar(tmp_path, example_catalog, address=address, name="restarted")
        served_at = time.monotonic()  # start_sidecar returns once a fresh channel sees SERVING
        names = ("blocking", "asyncio", "watching")
        waits = {name: c.back_after(served_at) for name, c in zip(names, callers, strict=True)}
        print("back after", waits)
        assert all(seconds < BACK_WITHIN_SECONDS for seconds in waits.values()), waits
    finally:
        for caller in callers:
            caller.stop()
        plain.close()
        watching.close()
        loop.run_until_complete(aio.close())
        loop.close()
        sidecar.terminate()


async def _async_client(address: str) -> AsyncEntitlementsClient:
    return AsyncEntitlementsClient(address, timeout=0.5)  # its channel belongs to the running loop


def test_watch_with_a_subject_named_twice_returns(tmp_path: Path, example_catalog: Path) -> None:
    sidecar = start_sidecar(tmp_path, example_catalog)
    client = EntitlementsClient(sidecar.address)
    try:
        done = threading.Event()

        def watch() -> None:
            client.watch(subscription_ids=["sub_acme_main", "sub_acme_main"], customer_ids=["acme", "acme"])
            done.set()

        threading.Thread(target=watch, daemon=True).start()
        assert done.wait(10), "watch() did not return"
        assert client.check("sso", subscription_id="sub_acme_main").source == "local"
        assert client.check("sso", customer_id="acme").source == "local"
    finally:
        client.close()
        sidecar.terminate()


def test_the_local_memo_stays_bounded_under_many_distinct_questions(tmp_path: Path, example_catalog: Path) -> None:
    sidecar = start_sidecar(tmp_path, example_catalog)
    client = EntitlementsClient(sidecar.address, local_answers=100)
    try:
        client.watch(subscription_ids=["sub_acme_main"])
        for quantity in range(3000):  # each a question of its own
            result = client.check("seats", subscription_id="sub_acme_main", privilege="max", quantity=quantity)
            assert result.source == "local" and result.allowed is (quantity <= 25)
        assert 0 < len(client._local) <= 100
    finally:
        client.close()
        sidecar.terminate()


def test_local_answers_say_stale_while_the_sidecar_is_frozen(tmp_path: Path, example_catalog: Path) -> None:
    sidecar = start_sidecar(tmp_path, example_catalog)
    client = EntitlementsClient(sidecar.address, heartbeat_seconds=0.5)  # stale after 1.5 s of silence

    def seats() -> tuple[str, object, bool]:
        result = client.check("seats", subscription_id="sub_acme_main", privilege="max")
        return result.source, result.value, result.stale

    try:
        client.watch(subscription_ids=["sub_acme_main"])
        # Longer than the bound on a stream with nothing to say: the heartbeats keep the answers fresh.
        holds_for(lambda: seats() == ("local", 25, False), seconds=2.0, what="fresh local answers")
        sidecar.process.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        eventually(lambda: seats() == ("local", 25, True), timeout=10, what="local answers marked stale")
        # The last beat came up to one interval before the freeze: stale no sooner than 1.5 s - 0.5 s after it.
        assert time.monotonic() - frozen >= 0.75
        sidecar.process.send_signal(signal.SIGCONT)
        eventually(lambda: seats() == ("local", 25, False), timeout=10, what="fresh again once it speaks")
    finally:
        sidecar.process.send_signal(signal.SIGCONT)
        client.close()
        sidecar.terminate()
