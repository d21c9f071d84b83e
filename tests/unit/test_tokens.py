"""Access-token verification refuses anything but a current, well-formed HS256 access token."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest

from src.common.auth import Principal
from src.modules.auth.tokens import AccessTokens, digest, new_secret

SECRET = "unit-test-secret-" * 4  # 68 bytes: long enough for every HMAC size
AUDIENCE = "chatty"
USER, SESSION = uuid.uuid4(), uuid.uuid4()


@pytest.fixture
def tokens() -> AccessTokens:
    return AccessTokens(SECRET, AUDIENCE, ttl_seconds=900)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": str(USER), "sid": str(SESSION), "typ": "access", "aud": AUDIENCE,
                              "iat": now, "nbf": now, "exp": now + 900}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], *, key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def test_issued_token_verifies(tokens: AccessTokens) -> None:
    token = tokens.issue(USER, SESSION)
    assert tokens.verify(token) == Principal(user_id=USER, session_id=SESSION)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_hand_signed_valid_token_verifies(tokens: AccessTokens) -> None:
    assert tokens.verify(_sign(_claims())) == Principal(user_id=USER, session_id=SESSION)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_token_is_refused(tokens: AccessTokens, alg: str) -> None:
    unsigned = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(_claims())}."
    assert tokens.verify(unsigned) is None


def test_other_algorithms_are_refused_even_with_the_right_key(tokens: AccessTokens) -> None:
    assert tokens.verify(_sign(_claims(), algorithm="HS512")) is None
    assert tokens.verify(_sign(_claims(), algorithm="HS384")) is None


def test_wrong_key_is_refused(tokens: AccessTokens) -> None:
    assert tokens.verify(_sign(_claims(), key="another-secret-another-secret-0123456789")) is None


def test_tampered_payload_is_refused(tokens: AccessTokens) -> None:
    header, _, signature = tokens.issue(USER, SESSION).split(".")
    forged = f"{header}.{_b64(_claims(sub=str(uuid.uuid4())))}.{signature}"
    assert tokens.verify(forged) is None


def test_expired_token_is_refused(tokens: AccessTokens) -> None:
    now = int(time.time())
    assert tokens.verify(_sign(_claims(iat=now - 1000, nbf=now - 1000, exp=now - 10))) is None


def test_token_not_yet_valid_is_refused(tokens: AccessTokens) -> None:
    now = int(time.time())
    assert tokens.verify(_sign(_claims(nbf=now + 600, exp=now + 1200))) is None


@pytest.mark.parametrize("aud", ["other-app", ["other-app"], ""])
def test_wrong_audience_is_refused(tokens: AccessTokens, aud: Any) -> None:
    assert tokens.verify(_sign(_claims(aud=aud))) is None


@pytest.mark.parametrize("typ", ["refresh", "reset", "ACCESS", ""])
def test_other_token_types_are_refused(tokens: AccessTokens, typ: str) -> None:
    assert tokens.verify(_sign(_claims(typ=typ))) is None


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat", "aud", "sub", "sid", "typ"])
def test_missing_claim_is_refused(tokens: AccessTokens, claim: str) -> None:
    claims = _claims()
    del claims[claim]
    assert tokens.verify(_sign(claims)) is None


@pytest.mark.parametrize("claims", [_claims(sub="not-a-uuid"), _claims(sid="42"), _claims(sub=12)])
def test_malformed_ids_are_refused(tokens: AccessTokens, claims: dict[str, Any]) -> None:
    assert tokens.verify(_sign(claims)) is None


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", new_secret()])
def test_garbage_is_refused(tokens: AccessTokens, garbage: str) -> None:
    assert tokens.verify(garbage) is None


def test_opaque_secrets_are_random_and_stored_hashed() -> None:
    first, second = new_secret(), new_secret()
    assert first != second and len(first) >= 43
    assert digest(first) == digest(first) != digest(second)
    assert len(digest(first)) == 64 and first not in digest(first)


def test_a_remembered_token_is_still_refused_once_it_expires() -> None:
    short_lived = AccessTokens(SECRET, AUDIENCE, ttl_seconds=1)
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    token = short_lived.issue(user_id, session_id)
    assert short_lived.verify(token) == Principal(user_id=user_id, session_id=session_id)
    assert short_lived.verify(token) == Principal(user_id=user_id, session_id=session_id)  # from memory
    time.sleep(2.1)
    assert short_lived.verify(token) is None
