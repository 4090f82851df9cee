"""Webhook signatures the way fal makes them, with a key the emulator publishes.

fal signs every webhook delivery with Ed25519 and publishes its public keys
as a JSON Web Key Set.  A receiver checks four headers:

- ``X-Fal-Webhook-Request-Id``: the request the delivery is about;
- ``X-Fal-Webhook-User-Id``: the account that submitted it;
- ``X-Fal-Webhook-Timestamp``: Unix seconds when it was signed (fal's examples
  refuse one more than five minutes away from their clock);
- ``X-Fal-Webhook-Signature``: hex Ed25519 signature of the four lines
  ``request id``, ``user id``, ``timestamp`` and the hex SHA-256 of the raw body.

The emulator's key comes from its seed, so a test can also rebuild it; the
public half is served at ``GET /.well-known/jwks.json``, where fal serves its own.

Example:
    >>> from pika_tasks.emulator._signing import WebhookSigner, verify
    >>> signer = WebhookSigner(seed=0)
    >>> headers = signer.headers("req-1", b'{"status": "OK"}', timestamp=1700000000)
    >>> verify(signer.jwks(), headers, b'{"status": "OK"}', now=1700000060)
    True
    >>> verify(signer.jwks(), headers, b'{"status": "ERROR"}', now=1700000060)
    False
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

REQUEST_ID = "X-Fal-Webhook-Request-Id"
USER_ID = "X-Fal-Webhook-User-Id"
TIMESTAMP = "X-Fal-Webhook-Timestamp"
SIGNATURE = "X-Fal-Webhook-Signature"

JWKS_PATH = "/.well-known/jwks.json"
"""Where the emulator publishes its public key (fal: the same path on its REST host)."""

USER_ID_VALUE = "pika-emulator"
"""The account id the emulator signs as."""

TOLERANCE_SECONDS = 300
"""How far a delivery's timestamp may be from the receiver's clock (fal's examples)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """The bytes fal signs: four lines, the last the hex SHA-256 of the raw body."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([request_id, user_id, timestamp, digest]).encode()


class WebhookSigner:
    """Signs deliveries with an Ed25519 key derived from ``seed``.

    Args:
        seed: the emulator's seed; the same seed gives the same key.
        user_id: the value of ``X-Fal-Webhook-User-Id``.
    """

    def __init__(self, seed: int, user_id: str = USER_ID_VALUE) -> None:
        secret = hashlib.blake2b(f"webhook-key\x1f{seed}".encode(), digest_size=32).digest()
        self._key = Ed25519PrivateKey.from_private_bytes(secret)
        self.user_id = user_id
        public = self._key.public_key().public_bytes_raw()
        self.key_id = hashlib.sha256(public).hexdigest()[:16]
        self._public = public

    def headers(
        self, request_id: str, body: bytes, *, timestamp: int | None = None
    ) -> dict[str, str]:
        """The four signature headers of a delivery of ``body`` about ``request_id``."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._key.sign(signed_message(request_id, self.user_id, stamp, body))
        return {
            REQUEST_ID: request_id,
            USER_ID: self.user_id,
            TIMESTAMP: stamp,
            SIGNATURE: signature.hex(),
        }

    def jwks(self) -> dict[str, Any]:
        """The public key as a JSON Web Key Set, as fal publishes its own."""
        key = {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _b64url(self._public),
            "kid": self.key_id,
            "use": "sig",
            "alg": "EdDSA",
        }
        return {"keys": [key]}


def verify(
    jwks: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> bool:
    """Check a delivery as fal's documentation tells receivers to.

    Args:
        jwks: the published key set.
        headers: the delivery's headers (any case).
        body: the raw body, exactly as received.
        now: the receiver's clock in Unix seconds (default: now).
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        request_id, user_id, stamp, signature = (
            lowered[name.lower()] for name in (REQUEST_ID, USER_ID, TIMESTAMP, SIGNATURE)
        )
        age = abs((time.time() if now is None else now) - int(stamp))
        raw_signature = bytes.fromhex(signature)
    except (KeyError, ValueError):
        return False
    if age > TOLERANCE_SECONDS:
        return False
    message = signed_message(request_id, user_id, stamp, body)
    for key in jwks.get("keys", []):
        if key.get("kty") != "OKP" or key.get("crv") != "Ed25519":
            continue
        try:
            Ed25519PublicKey.from_public_bytes(_b64url_decode(key["x"])).verify(
                raw_signature, message
            )
        except (InvalidSignature, ValueError, KeyError):
            continue
        return True
    return False
