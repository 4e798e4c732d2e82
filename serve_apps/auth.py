"""Credentials: the Nightscout API secret and role-scoped, HMAC-signed tokens.

- The API secret (environment variable, >= 12 characters) is the admin credential, sent as
  the header ``api-secret: sha1hex(secret)`` (Nightscout's convention) or ``?token=``.
- Role tokens are ``role.subject.signature`` with the subject base64url-encoded and the
  signature HMAC-SHA256(secret, role.subject): stateless, so every replica verifies them.
  uploader: write and read one patient; patient: read one patient; caregiver: read the
  patients listed (comma-separated); clinician: read the patients of one cohort; admin:
  everything.
- JWTs (Nightscout's API v3 credential) are issued for any of the above
  (``Authenticator.issue_jwt``) and stand for the same principal until they expire
  (``serve_apps.jwt_tokens``); they are accepted wherever a token is.
- Report keys are JWTs of a key of their own that live 10 minutes and open reports only
  (``issue_report_key``, ``report_principal``): what a report link in a new tab carries.
All comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from serve_apps.jwt_tokens import (
    REPORT_KEY_LABEL,
    REPORT_KEY_LIFETIME_S,
    Claims,
    InvalidJWT,
    JWTCodec,
    looks_like_jwt,
)

ROLES = ("admin", "uploader", "patient", "caregiver", "clinician")
MIN_SECRET_LEN = 12


class AuthError(Exception):
    """Missing or invalid credentials (HTTP 401)."""


class Forbidden(Exception):
    """Valid credentials without the right to this resource (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, and what they may touch."""

    role: str
    # patient id; for a caregiver, the patients followed, separated by commas; cohort name
    # (clinician); "*" (admin)
    subject: str

    @property
    def patients(self) -> list[str]:
        """The patients a patient, uploader or caregiver credential is about."""
        return self.subject.split(",") if self.role == "caregiver" else [self.subject]

    @property
    def name(self) -> str:
        """``role:subject``: the subject name Nightscout's answers and a JWT's ``sub`` carry."""
        return f"{self.role}:{self.subject}"

    @classmethod
    def from_name(cls, name: str) -> Principal:
        """The principal a ``name`` stands for; ValueError if it names no role."""
        role, sep, subject = name.partition(":")
        if not sep or role not in ROLES:
            raise ValueError(f"not a principal name: {name[:40]!r}")
        return cls(role, subject)

    def can_read(self, patient_id: str, cohort: str | None) -> bool:
        if self.role == "admin":
            return True
        if self.role == "clinician":
            return cohort is not None and _same(cohort, self.subject)
        return any(_same(patient_id, p) for p in self.patients)

    def can_write(self, patient_id: str) -> bool:
        return self.role == "admin" or (self.role == "uploader" and
                                        _same(patient_id, self.subject))

    def require_read(self, patient_id: str, cohort: str | None = None) -> None:
        if not self.can_read(patient_id, cohort):
            raise Forbidden(f"this {self.role} credential may not read patient {patient_id!r}")

    def require_write(self, patient_id: str) -> None:
        if not self.can_write(patient_id):
            raise Forbidden(f"this {self.role} credential may not write for patient {patient_id!r}")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two texts of any characters (``compare_digest`` refuses
    non-ASCII ``str``, and credentials arrive from paths and headers as sent)."""
    return hmac.compare_digest(_utf8(a), _utf8(b))


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


@dataclass(frozen=True)
class Grant:
    """A JWT issued in exchange for an access token, and whom it stands for."""

    token: str
    principal: Principal
    claims: Claims


class Authenticator:
    """Checks credentials against one secret."""

    def __init__(self, secret: str | None) -> None:
        if secret is not None and len(secret) < MIN_SECRET_LEN:
            raise ValueError(f"API secret must be at least {MIN_SECRET_LEN} characters")
        self._secret = secret
        self._secret_sha1 = hashlib.sha1(secret.encode()).hexdigest() if secret else None
        self._jwt = JWTCodec(secret) if secret else None
        self._report_keys = (JWTCodec(secret, REPORT_KEY_LIFETIME_S, REPORT_KEY_LABEL)
                             if secret else None)

    def make_token(self, role: str, subject: str) -> str:
        """A token for ``role`` over ``subject`` (patient id, cohort, or "*")."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if self._secret is None:
            raise ValueError("no API secret is configured")
        body = f"{role}.{_b64(subject)}"
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:32]

    def authenticate(self, api_secret: str | None, token: str | None) -> Principal:
        """The caller behind an ``api-secret`` header or a token; AuthError if none is valid."""
        if self._secret is None:
            raise AuthError("this server has no API secret configured")
        if api_secret and api_secret.startswith("token="):  # py-nightscout sends tokens so
            api_secret, token = None, api_secret[len("token="):]
        if api_secret and _same(api_secret.lower(), self._secret_sha1):
            return Principal("admin", "*")
        if token:
            if _same(hashlib.sha1(_utf8(token)).hexdigest(), self._secret_sha1) \
                    or _same(token.lower(), self._secret_sha1):
                return Principal("admin", "*")
            parts = token.split(".")
            if len(parts) == 3 and parts[0] in ROLES:
                body = f"{parts[0]}.{parts[1]}"
                if _same(parts[2], self._sign(body)):
                    try:
                        return Principal(parts[0], _unb64(parts[1]))
                    except (ValueError, UnicodeDecodeError):
                        pass
            elif looks_like_jwt(token):
                return self._from_jwt(token)
        raise AuthError("Invalid/Missing")

    def _from_jwt(self, token: str) -> Principal:
        assert self._jwt is not None  # a secret is configured (checked by the caller)
        try:
            return Principal.from_name(self._jwt.verify(token).sub)
        except (InvalidJWT, ValueError) as exc:
            raise AuthError(str(exc)) from None

    def issue_jwt(self, access_token: str) -> Grant:
        """A JWT for the holder of ``access_token`` (a role token, the API secret or its SHA-1,
        or a JWT of this server, which renews it); AuthError if the token is not valid."""
        principal = self.authenticate(None, access_token)
        assert self._jwt is not None
        token, claims = self._jwt.sign(principal.name)
        return Grant(token, principal, claims)

    def issue_report_key(self, principal: Principal) -> tuple[str, Claims]:
        """A key for ``principal``'s report links: it opens reports only, for 10 minutes."""
        if self._report_keys is None:
            raise AuthError("this server has no API secret configured")
        return self._report_keys.sign(principal.name)

    def report_principal(self, key: str) -> Principal:
        """Whom a report key stands for; AuthError if it is not a valid, unexpired key."""
        if self._report_keys is None:
            raise AuthError("this server has no API secret configured")
        try:
            return Principal.from_name(self._report_keys.verify(key).sub)
        except InvalidJWT:
            raise AuthError("report key not valid or expired (keys last 10 minutes): open the "
                            "report again from the web app") from None
        except ValueError as exc:
            raise AuthError(str(exc)) from None
