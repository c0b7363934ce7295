"""Verifying `X-Lago-Signature` over the raw body (docs/lago-contract.md §5, "Signature headers").

- hmac: standard base64 of HMAC-SHA256(raw body), keyed by the organization's HMAC token;
- jwt: RS256 with the instance's public key (fetched from Lago, cached); the `data` claim must equal
  the raw body; `iss` is checked when an issuer is configured.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable

import jwt

from entitlements_sidecar.domain.errors import EntitlementsError, UnauthenticatedError

_KEY_REFRESH_SECONDS = 60.0  # a failed JWT may mean a rotated key, but refetch at most this often


class SignatureError(UnauthenticatedError):
    """The webhook is unsigned, wrongly signed, or signed in a way we cannot check."""


class SignatureVerifier:
    def __init__(
        self,
        hmac_key: str | None,
        fetch_public_key: Callable[[], Awaitable[bytes]] | None,
        issuer: str | None = None,
    ) -> None:
        self._hmac_key = hmac_key.encode() if hmac_key else None
        self._fetch_public_key = fetch_public_key
        self._issuer = issuer or None
        self._public_key: bytes | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def verify(self, algorithm: str | None, signature: str | None, body: bytes) -> None:
        if not signature:
            raise SignatureError("missing X-Lago-Signature header")
        if algorithm == "hmac":
            self._verify_hmac(signature, body)
        elif algorithm == "jwt":
            await self._verify_jwt(signature, body)
        elif not algorithm:
            raise SignatureError("missing X-Lago-Signature-Algorithm header")
        else:
            raise SignatureError(f"unsupported signature algorithm {algorithm[:20]!r} (expected hmac or jwt)")

    def _verify_hmac(self, signature: str, body: bytes) -> None:
        if self._hmac_key is None:
            raise SignatureError("hmac signatures are not accepted: no HMAC key is configured")
        expected = base64.b64encode(hmac.new(self._hmac_key, body, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            raise SignatureError("hmac signature does not match the body")

    async def _verify_jwt(self, token: str, body: bytes) -> None:
        if self._fetch_public_key is None:
            raise SignatureError("jwt signatures are not accepted: no Lago API access to fetch the public key")
        key = await self._key(refresh=False)
        try:
            claims = self._decode(token, key)
        except jwt.InvalidSignatureError:
            fresher = await self._key(refresh=True)
            if fresher == key:
                raise SignatureError("jwt signature does not verify") from None
            claims = self._decode(token, fresher)
        data = claims.get("data")
        if not isinstance(data, str) or not hmac.compare_digest(data.encode(), body):
            raise SignatureError("jwt data claim does not match the body")

    def _decode(self, token: str, key: bytes) -> dict[str, object]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self._issuer,
                options={"require": ["data"], "verify_iss": self._issuer is not None},
            )
        except jwt.InvalidSignatureError:
            raise
        except jwt.PyJWTError as exc:  # expired, wrong issuer, wrong algorithm, garbled
            raise SignatureError(f"jwt rejected: {exc}") from None

    async def _key(self, refresh: bool) -> bytes:
        async with self._lock:
            stale = time.monotonic() - self._fetched_at > _KEY_REFRESH_SECONDS
            if self._public_key is None or (refresh and stale):
                assert self._fetch_public_key is not None
                try:
                    self._public_key = await self._fetch_public_key()
                except EntitlementsError:
                    if self._public_key is None:
                        raise  # Lago is unreachable: not the sender's fault (the intake answers 503)
                self._fetched_at = time.monotonic()
            return self._public_key
