"""The unit tier opens no network sockets: a test that needs one belongs in tests/integration."""

from __future__ import annotations

import socket
from typing import Any

import pytest

_NETWORK = (socket.AF_INET, socket.AF_INET6)


@pytest.fixture(autouse=True)
def no_network_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    # asyncio's own wake-up pipe is an AF_UNIX socketpair: only network families are refused.
    for name in ("connect", "connect_ex", "bind"):
        real = getattr(socket.socket, name)

        def refuse(self: socket.socket, *args: Any, _real: Any = real, _name: str = name) -> Any:
            if self.family in _NETWORK:
                raise AssertionError(f"a unit test called socket.{_name}{args}: move it to tests/integration")
            return _real(self, *args)

        monkeypatch.setattr(socket.socket, name, refuse)
