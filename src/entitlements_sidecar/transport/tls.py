"""TLS and mutual TLS for the gRPC and HTTP ports, from PEM files (mounted from a Secret)."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from entitlements_sidecar.domain.errors import ConfigError


def grpc_server_credentials(cert_file: str, key_file: str, client_ca_file: str) -> grpc.ServerCredentials | None:
    """None when no certificate is configured (plaintext, e.g. on localhost or a unix socket)."""
    if not cert_file:
        return None
    client_ca = _read(client_ca_file) if client_ca_file else None
    return grpc.ssl_server_credentials(
        [(_read(key_file), _read(cert_file))], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def http_ssl_context(cert_file: str, key_file: str, client_ca_file: str) -> ssl.SSLContext | None:
    if not cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
        if client_ca_file:
            context.load_verify_locations(client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"HTTP TLS: cannot use {cert_file} / {key_file}: {exc}") from exc
    return context


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"TLS: cannot read {path}: {exc.strerror}") from exc
