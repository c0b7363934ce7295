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
    # grpcio reports a key that does not match, or a file that is not PEM, only as "Failed to bind to
    # address" when the port is added: check them with OpenSSL first, for an error that names the problem.
    _context("gRPC", cert_file, key_file, client_ca_file)
    client_ca = _read(client_ca_file) if client_ca_file else None
    return grpc.ssl_server_credentials(
        [(_read(key_file), _read(cert_file))], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def http_ssl_context(cert_file: str, key_file: str, client_ca_file: str) -> ssl.SSLContext | None:
    if not cert_file:
        return None
    return _context("HTTP", cert_file, key_file, client_ca_file)


def _context(port: str, cert_file: str, key_file: str, client_ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{port} TLS: cannot use {cert_file} with key {key_file}: {exc}") from exc
    if client_ca_file:
        try:
            context.load_verify_locations(client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{port} TLS: cannot use client CA {client_ca_file}: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"TLS: cannot read {path}: {exc.strerror}") from exc
