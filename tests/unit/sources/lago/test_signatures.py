from __future__ import annotations

import time

import pytest

from entitlements_sidecar.sources.lago.errors import LagoUnavailableError
from entitlements_sidecar.sources.lago.signatures import SignatureError, SignatureVerifier
from tests.lago_emulator.webhooks import Signer

BODY = b'{"webhook_type":"subscription.updated","object_type":"subscription","subscription":{"external_id":"s"}}'


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(hmac_key="org-hmac-token", issuer="https://lago.example")


def verifier(signer: Signer, issuer: str | None = None, hmac_key: str | None = "org-hmac-token") -> SignatureVerifier:
    async def fetch() -> bytes:
        import base64

        return base64.b64decode(signer.public_key_base64())

    return SignatureVerifier(hmac_key, fetch, issuer)


async def test_valid_signatures_pass(signer: Signer) -> None:
    await verifier(signer).verify("hmac", signer.hmac_signature(BODY), BODY)
    await verifier(signer, issuer="https://lago.example").verify("jwt", signer.jwt_signature(BODY), BODY)


@pytest.mark.parametrize(
    ("algorithm", "make_signature", "message"),
    [
        ("hmac", lambda s: s.hmac_signature(BODY + b" "), "does not match"),
        ("hmac", lambda s: s.hmac_signature(BODY, key="api-key-not-hmac-token"), "does not match"),
        ("hmac", lambda s: "", "missing X-Lago-Signature"),
        (None, lambda s: s.hmac_signature(BODY), "missing X-Lago-Signature-Algorithm"),
        ("md5", lambda s: s.hmac_signature(BODY), "unsupported signature algorithm"),
        ("jwt", lambda s: s.jwt_signature(BODY + b" "), "data claim does not match"),
        ("jwt", lambda s: s.jwt_signature(BODY, exp=int(time.time()) - 5), "expired"),
        ("jwt", lambda s: s.jwt_signature(BODY, iss="https://other.example"), "issuer"),
        ("jwt", lambda s: "not.a.jwt", "jwt rejected"),
        ("jwt", lambda s: s.hmac_signature(BODY), "jwt rejected"),
    ],
)
async def test_bad_signatures_are_rejected_with_a_reason(
    signer: Signer, algorithm: str | None, make_signature: object, message: str
) -> None:
    with pytest.raises(SignatureError, match=message):
        await verifier(signer, issuer="https://lago.example").verify(algorithm, make_signature(signer), BODY)  # type: ignore[operator]


async def test_jwt_signed_with_another_key_is_rejected(signer: Signer) -> None:
    stranger = Signer(hmac_key="x", issuer="https://lago.example")
    with pytest.raises(SignatureError, match="does not verify"):
        await verifier(signer).verify("jwt", stranger.jwt_signature(BODY), BODY)


async def test_hmac_without_a_configured_key_is_refused(signer: Signer) -> None:
    with pytest.raises(SignatureError, match="no HMAC key"):
        await verifier(signer, hmac_key=None).verify("hmac", signer.hmac_signature(BODY), BODY)


async def test_unreachable_lago_is_not_the_senders_fault(signer: Signer) -> None:
    async def down() -> bytes:
        raise LagoUnavailableError("lago unreachable")

    with pytest.raises(LagoUnavailableError):
        await SignatureVerifier(None, down).verify("jwt", signer.jwt_signature(BODY), BODY)
