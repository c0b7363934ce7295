"""Signing and delivering webhooks the way Lago does (docs/lago-contract.md §5, "Signature headers")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.lago_emulator.models import Webhook


def rails_json(payload: Any) -> bytes:
    """Compact JSON with Rails' HTML-entity escapes, so nobody can re-serialize and match by luck."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


class Signer:
    def __init__(self, hmac_key: str, issuer: str) -> None:
        self.hmac_key = hmac_key
        self.issuer = issuer
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_key_base64(self) -> str:
        pem = self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.encodebytes(pem).decode()  # Ruby's Base64.encode64 also breaks lines

    def hmac_signature(self, body: bytes, key: str | None = None) -> str:
        digest = hmac.new((key or self.hmac_key).encode(), body, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def jwt_signature(self, body: bytes, **extra_claims: Any) -> str:
        claims = {"data": body.decode(), "iss": self.issuer, **extra_claims}
        return jwt.encode(claims, self._private, algorithm="RS256", headers={"alg": "RS256"})

    def headers(self, webhook: Webhook, body: bytes, algorithm: str) -> dict[str, str]:
        signature = self.hmac_signature(body) if algorithm == "hmac" else self.jwt_signature(body)
        return {
            "Content-Type": "application/json",
            "X-Lago-Signature": signature,
            "X-Lago-Signature-Algorithm": algorithm,
            "X-Lago-Unique-Key": webhook.unique_key,
        }


def deliver(
    url: str, webhook: Webhook, signer: Signer, algorithm: str = "hmac", client: httpx.Client | None = None
) -> int:
    """POST one webhook; returns the HTTP status the endpoint answered."""
    body = rails_json(webhook.payload)
    if client is not None:
        return client.post(url, content=body, headers=signer.headers(webhook, body, algorithm)).status_code
    with httpx.Client(timeout=10) as own:
        return own.post(url, content=body, headers=signer.headers(webhook, body, algorithm)).status_code
