"""JSON Web Tokens as Nightscout issues them: HS256, a subject, issued-at and expiry.

Nightscout's API v3 takes only ``Authorization: Bearer <JWT>``, and a client gets its JWT by
exchanging an access token (``/api/v2/authorization/request/<token>``). Nightscout signs
with a random key kept on the server's disk (``lib/server/enclave.js``); here the key is
derived from the API secret (HMAC-SHA256 with a label of its own, so it never equals the
key of the role tokens), which every ingress replica holds, so a JWT issued by one replica
is accepted by all and stays valid across restarts, and changing the secret revokes every
JWT with it. The lifetime is Nightscout's: 8 hours.

A second codec, with a key of its own (``REPORT_KEY_LABEL``) and a 10-minute lifetime, signs
the keys of report links (``Authenticator.issue_report_key``): a browser opens a report in a
new tab, which sends no ``Authorization`` header, so the link carries a key that is good for
reports only and only for minutes, never the long-lived credential.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import jwt

__all__ = ["LIFETIME_S", "REPORT_KEY_LABEL", "REPORT_KEY_LIFETIME_S", "Claims", "InvalidJWT",
           "JWTCodec", "looks_like_jwt"]

LIFETIME_S = 8 * 3600
_ALGORITHM = "HS256"
_KEY_LABEL = b"cgm-ray JWT signing key v1"
REPORT_KEY_LABEL, REPORT_KEY_LIFETIME_S = b"cgm-ray report link key v1", 600


class InvalidJWT(Exception):
    """A token that is not a JWT of this server, or no longer valid; the message says which."""


@dataclass(frozen=True)
class Claims:
    """What a JWT of this server asserts: who (``sub``) and when (epoch seconds)."""

    sub: str
    iat: int
    exp: int


def looks_like_jwt(token: str) -> bool:
    """Whether ``token`` has a JWT's shape (three parts, a JSON header), not whether it is valid."""
    return token.isascii() and token.count(".") == 2 and token.startswith("eyJ")


class JWTCodec:
    """Signs and verifies this server's JWTs with a key derived from the API secret."""

    def __init__(self, secret: str, lifetime_s: int = LIFETIME_S, label: bytes = _KEY_LABEL) -> None:
        self._key = hmac.new(secret.encode(), label, hashlib.sha256).digest()
        self.lifetime_s = lifetime_s

    def sign(self, sub: str, now_s: int | None = None) -> tuple[str, Claims]:
        """A JWT for ``sub``, valid for ``lifetime_s`` from ``now_s`` (default: now)."""
        iat = int(time.time()) if now_s is None else now_s
        claims = Claims(sub, iat, iat + self.lifetime_s)
        token = jwt.encode({"sub": sub, "iat": claims.iat, "exp": claims.exp}, self._key,
                           algorithm=_ALGORITHM)
        return token, claims

    def verify(self, token: str) -> Claims:
        """The claims of a valid JWT; ``InvalidJWT`` saying why otherwise."""
        try:
            payload = jwt.decode(token, self._key, algorithms=[_ALGORITHM],
                                 options={"require": ["sub", "iat", "exp"]})
        except jwt.ExpiredSignatureError:
            raise InvalidJWT("JWT expired: exchange the access token for a new one at "
                             "/api/v2/authorization/request/<access token>") from None
        except jwt.InvalidSignatureError:
            raise InvalidJWT("JWT signature does not verify (issued by another server or "
                             "before the API secret changed)") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidJWT(f"malformed JWT: {exc}") from None
        return Claims(payload["sub"], int(payload["iat"]), int(payload["exp"]))
