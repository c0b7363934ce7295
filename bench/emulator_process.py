"""The Lago emulator of S4 and S5 in a process of its own, driven over a pipe.

In the bench's process, the emulator's request handling took the GIL from the loop that polls the sidecar
every millisecond, so a busier Lago (a reconciliation at full budget) slowed the measurement, not only the
sidecar. Here the emulator has its own interpreter; the bench asks it to change a subscription and
deliver the webhooks, and for the API requests it served.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

from tests.lago_emulator.server import LagoEmulator


def seed(lago: LagoEmulator, count: int) -> None:
    """`count` subscriptions on 2 plans of one feature, 1 in 20 with an override."""
    state = lago.state
    state.create_feature("seats", [{"code": "max", "value_type": "integer"}])
    for code in ("basic", "pro"):
        state.create_plan(code, 1000)
        state.write_plan_entitlements(code, {"seats": {"max": 10}}, replace=True)
    for index in range(count):
        state.create_subscription(f"sub_{index:07d}", f"cust_{index:07d}", ("basic", "pro")[index % 2])
        if index % 20 == 0:
            state.patch_subscription_entitlements(f"sub_{index:07d}", {"seats": {"max": 20}})
    lago.take_outbox()


def _serve(conn: Connection, count: int) -> None:
    lago = LagoEmulator().start()
    try:
        seed(lago, count)
        conn.send((lago.url, lago.api_key, lago.signer.hmac_key))
        while True:
            command, *args = conn.recv()
            if command == "stop":
                return
            if command == "webhook_url":
                lago.webhook_url = args[0]
                reply: Any = None
            elif command == "change":
                target, value = args
                lago.state.patch_subscription_entitlements(target, {"seats": {"max": value}})
                reply = lago.deliver(lago.take_outbox())
            elif command == "api_requests":
                reply = lago.controls.api_requests()
            else:
                reply = ValueError(f"unknown command {command!r}")
            conn.send(reply)
    finally:
        lago.stop()


class EmulatorProcess:
    """A seeded emulator in a spawned child; `stop` ends it (it is a daemon, so it also ends with the bench)."""

    def __init__(self, count: int) -> None:
        self._conn, theirs = multiprocessing.Pipe()
        self._child = multiprocessing.get_context("spawn").Process(target=_serve, args=(theirs, count), daemon=True)
        self._child.start()
        if not self._conn.poll(600):
            raise TimeoutError("the emulator did not start")
        self.url, self.api_key, self.hmac_key = self._conn.recv()

    def set_webhook_url(self, url: str) -> None:
        self._call("webhook_url", url)

    def change(self, target: str, value: int) -> list[int]:
        """Set `target`'s seats.max to `value` and deliver the webhooks it makes; their HTTP statuses."""
        statuses: list[int] = self._call("change", target, value)
        return statuses

    def api_requests(self) -> list[tuple[float, str, str]]:
        """The API requests the emulator served: (time.monotonic() at arrival, method, path)."""
        requests: list[tuple[float, str, str]] = self._call("api_requests")
        return requests

    def stop(self) -> None:
        if self._child.is_alive():
            self._conn.send(("stop",))
            self._child.join(timeout=15)
        if self._child.is_alive():
            self._child.kill()

    def _call(self, *command: Any) -> Any:
        self._conn.send(command)
        if not self._conn.poll(60):
            raise TimeoutError(f"the emulator did not answer {command[0]}")
        reply = self._conn.recv()
        if isinstance(reply, Exception):
            raise reply
        return reply
