"""TLS and mutual TLS on the gRPC and HTTP ports, with certificates made for the test."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from entitlements_sidecar.client import EntitlementsClient
from tests.support.processes import free_port, run_cli, start_sidecar

pytestmark = pytest.mark.integration


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(directory: Path, name: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
           server: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_cert, issuer_key = ca if ca is not None else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer_cert.subject if issuer_cert is not None else _name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )  # fmt: skip
    cert = builder.sign(issuer_key, hashes.SHA256())
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key


def test_grpc_and_http_over_mutual_tls(tmp_path: Path, example_catalog: Path) -> None:
    ca = _issue(tmp_path, "ca", None)
    _issue(tmp_path, "server", ca, server=True)
    _issue(tmp_path, "client", ca)
    _issue(tmp_path, "stranger", _issue(tmp_path, "other-ca", None))
    files = {name: str(tmp_path / name) for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key",
                                                       "stranger.crt", "stranger.key")}  # fmt: skip
    http_port = free_port()
    args = ["--tls-cert-file", files["server.crt"], "--tls-key-file", files["server.key"],
            "--tls-client-ca-file", files["ca.crt"], "--http-tls-cert-file", files["server.crt"],
            "--http-tls-key-file", files["server.key"], "--http-tls-client-ca-file", files["ca.crt"],
            "--http-address", f"127.0.0.1:{http_port}"]  # fmt: skip

    def client_credentials(cert: str = "client") -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            Path(files["ca.crt"]).read_bytes(), Path(files[f"{cert}.key"]).read_bytes(),
            Path(files[f"{cert}.crt"]).read_bytes(),
        )  # fmt: skip

    def ready(sidecar: object) -> bool:
        with EntitlementsClient(sidecar.address, timeout=2, credentials=client_credentials()) as client:  # type: ignore[attr-defined]
            return client.check("sso", subscription_id="sub_acme_main").allowed

    sidecar = start_sidecar(tmp_path, example_catalog, args, ready=ready)
    try:
        with EntitlementsClient(sidecar.address, timeout=2, credentials=client_credentials()) as client:
            assert client.check("seats", subscription_id="sub_acme_main", privilege="max").value == 25
        for credentials in (
            grpc.ssl_channel_credentials(Path(files["ca.crt"]).read_bytes()),  # TLS without a client certificate
            client_credentials("stranger"),  # a certificate from another CA
        ):
            with EntitlementsClient(sidecar.address, timeout=2, credentials=credentials) as client:
                with pytest.raises(grpc.RpcError) as refused:
                    client.check("sso", subscription_id="sub_acme_main")
                assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        with EntitlementsClient(sidecar.address, timeout=2) as plaintext, pytest.raises(grpc.RpcError):
            plaintext.check("sso", subscription_id="sub_acme_main")

        context = ssl.create_default_context(cafile=files["ca.crt"])
        context.load_cert_chain(files["client.crt"], files["client.key"])
        assert httpx.get(f"https://127.0.0.1:{http_port}/healthz", verify=context).status_code == 200
        no_client_cert = ssl.create_default_context(cafile=files["ca.crt"])
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"https://127.0.0.1:{http_port}/healthz", verify=no_client_cert)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{http_port}/healthz")

        tls = ["--ca-file", files["ca.crt"], "--cert-file", files["client.crt"], "--key-file", files["client.key"]]
        status = run_cli("status", "--target", sidecar.address, "--http", f"127.0.0.1:{http_port}", *tls)
        assert status.returncode == 0 and "SERVING" in status.stdout, status.stdout + status.stderr
        check = run_cli(
            "check", "--target", sidecar.address, "--subscription", "sub_acme_main", "--feature", "sso", *tls
        )
        assert check.returncode == 0 and check.stdout.startswith("ALLOWED")
    finally:
        sidecar.terminate()


def test_tls_settings_that_cannot_work_stop_startup(tmp_path: Path) -> None:
    result = run_cli("serve", "--tls-cert-file", str(tmp_path / "missing.crt"), "--tls-key-file", str(tmp_path / "k"))
    assert result.returncode == 2 and "missing.crt is not a readable file" in result.stderr
    only_cert = run_cli("serve", "--tls-cert-file", str(tmp_path / "x.crt"))
    assert only_cert.returncode == 2 and "both a certificate and a key" in only_cert.stderr


def test_a_wrong_key_or_garbage_pem_is_named_for_both_ports(tmp_path: Path) -> None:
    _issue(tmp_path, "server", None, server=True)
    _issue(tmp_path, "other", None, server=True)
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    cert, other_key, garbage = (str(tmp_path / n) for n in ("server.crt", "other.key", "garbage.pem"))
    for prefix in ("--tls", "--http-tls"):
        wrong_key = run_cli("serve", "--catalog-path", "examples/catalog.yaml", f"{prefix}-cert-file", cert,
                            f"{prefix}-key-file", other_key, "--grpc-address", f"127.0.0.1:{free_port()}",
                            "--http-address", f"127.0.0.1:{free_port()}")  # fmt: skip
        assert wrong_key.returncode == 2, wrong_key.stderr
        assert "Traceback" not in wrong_key.stderr and "Failed to bind" not in wrong_key.stderr
        assert f"with key {other_key}" in wrong_key.stderr and "KEY_VALUES_MISMATCH" in wrong_key.stderr
        bad_pem = run_cli("serve", "--catalog-path", "examples/catalog.yaml", f"{prefix}-cert-file", garbage,
                          f"{prefix}-key-file", other_key, "--grpc-address", f"127.0.0.1:{free_port()}",
                          "--http-address", f"127.0.0.1:{free_port()}")  # fmt: skip
        assert bad_pem.returncode == 2 and f"cannot use {garbage}" in bad_pem.stderr, bad_pem.stderr
