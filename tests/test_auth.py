"""Credentials: API secret, role tokens, JWTs, scopes."""

from __future__ import annotations

import hashlib
import time

import pytest

from serve_apps.auth import Authenticator, AuthError, Forbidden
from serve_apps.jwt_tokens import LIFETIME_S, JWTCodec

SECRET = "correct-horse-battery"


def test_api_secret_header_and_token_are_admin():
    auth = Authenticator(SECRET)
    assert auth.authenticate(hashlib.sha1(SECRET.encode()).hexdigest(), None).role == "admin"
    assert auth.authenticate(None, SECRET).role == "admin"


def test_role_tokens_are_scoped():
    auth = Authenticator(SECRET)
    caregiver = auth.authenticate(None, auth.make_token("caregiver", "adult#001"))
    caregiver.require_read("adult#001")
    with pytest.raises(Forbidden):
        caregiver.require_read("adult#002")
    with pytest.raises(Forbidden):
        caregiver.require_write("adult#001")
    uploader = auth.authenticate(None, auth.make_token("uploader", "p.with.dots"))
    uploader.require_write("p.with.dots")
    clinician = auth.authenticate(None, auth.make_token("clinician", "trial-A"))
    clinician.require_read("anyone", cohort="trial-A")
    with pytest.raises(Forbidden):
        clinician.require_read("anyone", cohort="trial-B")


def test_forged_or_missing_credentials_are_rejected():
    auth = Authenticator(SECRET)
    token = auth.make_token("patient", "adult#001")
    forged = token.rsplit(".", 1)[0] + "." + "0" * 32
    for api_secret, tok in [(None, None), ("0" * 40, None), (None, forged),
                            (None, Authenticator("another-secret-x").make_token("admin", "*"))]:
        with pytest.raises(AuthError):
            auth.authenticate(api_secret, tok)
    with pytest.raises(ValueError):
        Authenticator("short")


def test_credentials_of_any_characters_are_refused_not_crashed_on():
    auth = Authenticator(SECRET)
    for api_secret, token in [("é" * 40, None), (None, "patient.é.é"), (None, "ê"),
                              (None, "eyJé.a.b")]:
        with pytest.raises(AuthError):
            auth.authenticate(api_secret, token)
    with pytest.raises(Forbidden):
        auth.authenticate(None, auth.make_token("patient", "adult#001")).require_read("é")


def test_a_jwt_stands_for_its_access_token_until_it_expires():
    auth = Authenticator(SECRET)
    for access, principal in [(auth.make_token("uploader", "p:1"), ("uploader", "p:1")),
                              (hashlib.sha1(SECRET.encode()).hexdigest(), ("admin", "*"))]:
        grant = auth.issue_jwt(access)
        assert (grant.principal.role, grant.principal.subject) == principal
        assert grant.claims.exp - grant.claims.iat == LIFETIME_S
        assert auth.authenticate(None, grant.token) == grant.principal
        assert auth.issue_jwt(grant.token).principal == grant.principal  # renewal
    expired, _ = JWTCodec(SECRET).sign("patient:p1", now_s=int(time.time()) - LIFETIME_S - 60)
    with pytest.raises(AuthError, match="expired"):
        auth.authenticate(None, expired)


def test_jwts_of_another_secret_or_forged_subjects_are_rejected():
    auth = Authenticator(SECRET)
    foreign = Authenticator("another-secret-x").issue_jwt(
        Authenticator("another-secret-x").make_token("admin", "*")).token
    with pytest.raises(AuthError, match="signature"):
        auth.authenticate(None, foreign)
    no_role, _ = JWTCodec(SECRET).sign("root:*")
    for token in (no_role, "eyJhbGciOiJIUzI1NiJ9.e30.x"):
        with pytest.raises(AuthError):
            auth.authenticate(None, token)
    with pytest.raises(AuthError):
        auth.issue_jwt("not-a-token")
