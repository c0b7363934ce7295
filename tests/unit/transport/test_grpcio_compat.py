"""The server refuses to start on a grpcio without the private function the routing relies on."""

from __future__ import annotations

import pytest

from entitlements_sidecar.domain.errors import ConfigError
from entitlements_sidecar.transport.grpc import grpcio_compat


def test_the_installed_grpcio_has_the_stream_marker() -> None:
    assert callable(grpcio_compat.STREAM_RESPONSE_IN_POOL)
    grpcio_compat.require_stream_marker()


def test_a_grpcio_without_it_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="_stream_response_in_pool"):
        grpcio_compat.require_stream_marker(None)
